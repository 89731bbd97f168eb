"""What the gateway and the admin share: files, the database, the directory and snapshots."""
