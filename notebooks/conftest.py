"""nbval settings for the notebooks: wait longer for a kernel's last outputs after a long cell."""

# nbval waits 5 s for the outputs; a busy 2-core machine can miss that after long training
OUTPUT_TIMEOUT_S = 60


def pytest_collection_modifyitems(items):
    """Give every notebook cell nbval collected a longer wait for its outputs."""
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = OUTPUT_TIMEOUT_S
