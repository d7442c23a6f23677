"""What `pants run` hands the image tool's `run-image` to run a container with."""

import re

# A port to publish, as `docker run -p` takes it.
PUBLISH_FORM = "[[IP:]HOST_PORT:]CONTAINER_PORT[/PROTOCOL]"
PUBLISH = re.compile(
    r"(?:(?:(?P<ip>[0-9.]+|\[[0-9a-fA-F:]+\]):)?(?P<host>\d*):)?"
    r"(?P<container>\d+)(?P<protocol>/(?:tcp|udp|sctp))?"
)

# The engines `pants run` loads and runs an image in, each through the Docker API it serves.
DOCKER = "docker"
PODMAN = "podman"
ENGINES = (DOCKER, PODMAN)
