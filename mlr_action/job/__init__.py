"""What a job receives and runs: its spec, the shipped folder, the runner inside the job."""
