"""hilum package."""
