"""The plain FastAPI + Celery + Redis service of the tutorials, for bench/side_by_side.py."""
