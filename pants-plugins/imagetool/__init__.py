"""The image tool: deterministic layers and OCI images, built without a container daemon."""
