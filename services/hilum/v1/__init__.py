"""v1 package."""
