"""facepipe's tools, in layers (.importlinter checks them): common/ (photos, drawing, S3 notification rules), ops/
(the operator commands on a Target), local/ (local mode: embedded AWS, DetectFaces emulator, local Lambda runtime),
cli/ (python -m facepipe: parses, picks the Target, prints). Each may import those before it, never those after."""
