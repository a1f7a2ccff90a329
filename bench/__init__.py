"""Load benchmark of ParkSpot's API through a real gunicorn (see bench/README.md)."""
