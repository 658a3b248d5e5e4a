"""Whole models built from the attention modules; importing this package registers them in the zoo."""

from attnx.exporters.models import (  # noqa: F401  (imported for their registrations)
    dense,
    detection,
    resnet,
    transformers,
)
