"""The web widget's static files and demo page, and the feedback dashboard."""
