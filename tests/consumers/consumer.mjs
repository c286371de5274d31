// A consumer of facepipe's results written as another team would: Node.js, the AWS SDK for JavaScript v3 and
// Node's own zlib, no facepipe code. `subscribe` makes a queue and a rule for facepipe's outcome events and prints
// the queue's URL; `read QUEUE_URL` waits for an outcome event on it and reads that image's result from the table,
// printing {event, faces} as JSON. Endpoint and region come from AWS_ENDPOINT_URL and AWS_REGION.
import { DynamoDBClient, QueryCommand } from "@aws-sdk/client-dynamodb";
import { EventBridgeClient, PutRuleCommand, PutTargetsCommand } from "@aws-sdk/client-eventbridge";
import {
  CreateQueueCommand, DeleteMessageCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient,
} from "@aws-sdk/client-sqs";
import { gunzipSync } from "node:zlib";

const config = { endpoint: process.env.AWS_ENDPOINT_URL, region: process.env.AWS_REGION };
const [command, arg] = process.argv.slice(2);

async function subscribe() {
  const sqs = new SQSClient(config);
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: "node-consumer" }));
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["QueueArn"] }));
  const events = new EventBridgeClient(config);
  await events.send(new PutRuleCommand({
    Name: "node-consumer-faces", EventPattern: JSON.stringify({ source: ["facepipe"], "detail-type": ["Faces Detected"] }),
  }));
  await events.send(new PutTargetsCommand({ Rule: "node-consumer-faces", Targets: [{ Id: "queue", Arn: Attributes.QueueArn }] }));
  console.log(QueueUrl);
}

async function readResult(table, pk) {
  const { Items } = await new DynamoDBClient(config).send(new QueryCommand({
    TableName: table, ConsistentRead: true, KeyConditionExpression: "pk = :pk",
    ExpressionAttributeValues: { ":pk": { S: pk } },
  }));
  const bySk = Object.fromEntries(Items.map((item) => [item.sk.S, item]));
  const meta = bySk.META;
  const faces = [];
  for (let n = 0; n < Number(meta.face_chunks?.N ?? 0); n++) {
    const chunk = bySk[`FACES#${meta.sequencer.S}#${String(n).padStart(4, "0")}`];
    faces.push(...JSON.parse(gunzipSync(chunk.faces_json_gzip.B)));
  }
  return { status: meta.status.S, faces };
}

async function read(queueUrl) {
  const sqs = new SQSClient(config);
  for (let attempt = 0; attempt < 30; attempt++) {
    const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 1 }));
    for (const message of Messages) {
      await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }));
      const event = JSON.parse(message.Body);
      const result = await readResult(event.detail.table, event.detail.pk);
      console.log(JSON.stringify({ event, ...result }));
      return;
    }
  }
  throw new Error("no outcome event arrived");
}

if (command === "subscribe") await subscribe();
else if (command === "read") await read(arg);
else throw new Error(`usage: consumer.mjs subscribe | read QUEUE_URL (got ${command})`);
