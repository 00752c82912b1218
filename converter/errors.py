"""The one error type the kit raises for bad input: a problem and the fix, on one line."""


class KitError(Exception):
    """A user-facing error. The CLI prints `error: <problem> — fix: <fix>` and exits 2."""

    def __init__(self, problem: str, fix: str = ""):
        self.problem = " ".join(str(problem).split())
        self.fix = " ".join(str(fix).split())
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.problem} — fix: {self.fix}" if self.fix else self.problem


class CheckFailed(Exception):
    """A check ran and found a difference (e.g. changed golden outputs): a result, not a crash."""
