"""What both the operator commands (facepipe.ops) and local mode (facepipe.local) use, and neither owns: the
sample photos (photos/), FaceDetails drawn onto an image (annotate.py), and S3 notification configurations as S3
judges them (notifications.py). It imports neither of them."""
