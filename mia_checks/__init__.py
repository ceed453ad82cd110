"""mia-checks: membership-inference privacy gate for text-to-image models, as a pytest plugin."""

__version__ = "0.1.0"
