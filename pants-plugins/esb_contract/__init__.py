"""What the esb backend and the image tool must agree on, written once and imported by both.

It runs on either half's Python (3.9 inside Pants, the base's minor in the tool) and imports
nothing beyond the standard library.
"""
