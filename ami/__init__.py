"""AMI jobs: an async ML job system."""
