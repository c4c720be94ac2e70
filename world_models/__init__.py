"""World models: tokenizers, dynamics, losses, metrics, bundles and trainers."""
