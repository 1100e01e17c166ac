"""The state a problem hands to the optimisation loop."""

__all__ = ["State"]


class State:
    """An energy evaluated at ``p``: its value, gradient and what a line needs."""

    __slots__ = ("p", "value", "gradient", "parts")

    def __init__(self, p, value, gradient, parts=None):
        self.p = p
        self.value = value
        self.gradient = gradient
        self.parts = parts
