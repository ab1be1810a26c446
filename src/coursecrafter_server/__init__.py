"""CourseCrafter API server."""
