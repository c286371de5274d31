"""facepipe: local mode (embedded AWS + DetectFaces emulator + local Lambda runtime) and the operator CLI."""
