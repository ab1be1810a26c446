"""CourseCrafter transcoding worker."""
