"""Printing reStructuredText simple tables for the benchmark scripts."""


def print_rst_table(header, rows):
    """Print ``rows`` (lists of strings) under ``header`` as an RST simple table."""
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = "  ".join("=" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    print(line)
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(line)
