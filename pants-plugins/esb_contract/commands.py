"""The image tool's subcommands, by the names the backend runs them under and the tool's CLI
registers them under."""

ACCOUNTS_LAYER = "accounts-layer"
ASSEMBLE = "assemble"
BASE_LIBRARIES = "base-libraries"
CHECK_NATIVE = "check-native"
DEBIAN_CHECK_LOCK = "debian-check-lock"
DEBIAN_LOCK = "debian-lock"
DEBIAN_ROOTFS = "debian-rootfs"
DISTRIBUTION_LAYER = "distribution-layer"
EXPORT_LOCK = "export-lock"
IMAGE_PLATFORM = "image-platform"
LAYER_FROM_DIR = "layer-from-dir"
LAYER_INVENTORIES = "layer-inventories"
MERGE_INVENTORY = "merge-inventory"
PULL_IMAGE = "pull-image"
PUSH_IMAGE = "push-image"
RUN_IMAGE = "run-image"
SDIST_WHEEL = "sdist-wheel"
SERVICE_LAYER = "service-layer"
UV_LAYER = "uv-layer"
UV_LOCK = "uv-lock"
VENV_LAYER = "venv-layer"

ALL = frozenset(
    {
        ACCOUNTS_LAYER,
        ASSEMBLE,
        BASE_LIBRARIES,
        CHECK_NATIVE,
        DEBIAN_CHECK_LOCK,
        DEBIAN_LOCK,
        DEBIAN_ROOTFS,
        DISTRIBUTION_LAYER,
        EXPORT_LOCK,
        IMAGE_PLATFORM,
        LAYER_FROM_DIR,
        LAYER_INVENTORIES,
        MERGE_INVENTORY,
        PULL_IMAGE,
        PUSH_IMAGE,
        RUN_IMAGE,
        SDIST_WHEEL,
        SERVICE_LAYER,
        UV_LAYER,
        UV_LOCK,
        VENV_LAYER,
    }
)
