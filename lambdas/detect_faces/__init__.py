"""The detect_faces Lambda: S3 upload events -> Rekognition DetectFaces -> DynamoDB / SQS DLQ."""
