"""How a federated run is shown: held-out accuracy per round (one line per run, e.g. FedAvg and
FedAvg + DP), a one-line description and the per-round table for report.md."""
from __future__ import annotations

from pathlib import Path


def accuracy_series(record: dict) -> list[float] | None:
    """Held-out accuracy before training and after each round, or None when any of them is missing."""
    values = [record.get("eval_before", {}).get("accuracy")] + [r.get("eval_accuracy") for r in record.get("rounds", [])]
    return None if None in values else values


def accuracy_plot_png(runs: dict[str, dict]) -> bytes | None:
    """runs: label -> a federated stage record. PNG bytes of accuracy per round, None when no run has accuracy."""
    series = {label: accuracy_series(record) for label, record in runs.items()}
    series = {label: values for label, values in series.items() if values is not None}
    if not series:
        return None
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    for label, values in series.items():
        epsilon = runs[label].get("privacy", {}).get("epsilon")
        axis.plot(range(len(values)), values, marker="o", markersize=3,
                  label=label + (f" (ε = {epsilon:.3g})" if epsilon is not None else ""))
    axis.set_xlabel("round (0: before training)")
    axis.set_ylabel("held-out accuracy")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    # no timestamp in the PNG: the same run gives the same bytes
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def write_accuracy_plot(runs: dict[str, dict], path: Path) -> bool:
    """accuracy_plot_png written to `path`; False (nothing written) when no run has accuracy."""
    png = accuracy_plot_png(runs)
    if png is not None:
        Path(path).write_bytes(png)
    return png is not None


def describe_run(record: dict) -> str:
    """'10 clients (dirichlet), 5 per round, 12 rounds, 11.2 MB exchanged, ε = 3.1 at δ = 1e-05'."""
    settings, rounds = record["settings"], record.get("rounds", [])
    poisson = (settings.get("dp") or {}).get("sampling") == "poisson"
    per_round = (f"each in a round with probability {settings['fraction_fit']:g} (Poisson)" if poisson
                 else f"{record['clients_per_round']} per round")
    text = (f"{settings['clients']} clients ({settings['partition']}), {per_round}, "
            f"{len(rounds)} rounds of {settings['strategy']}, {record['bytes_exchanged'] / 1e6:.1f} MB exchanged")
    if "privacy" in record:
        text += f", ε = {record['privacy']['epsilon']:.3g} at δ = {record['privacy']['delta']:g}"
    return text + (f"; plot: {record['plot']}" if record.get("plot") else "")


def rounds_table(record: dict) -> list[str]:
    """report.md lines: one row per round (clients, payload bytes, losses, held-out accuracy, seconds)."""
    lines = ["", "## Federated rounds", "", describe_run(record) + ".", "",
             "| round | clients | bytes sent | bytes received | train loss | update norm | held-out loss | held-out accuracy "
             "| seconds |", "|---|---|---|---|---|---|---|---|---|"]
    before = record.get("eval_before", {})
    lines.append(f"| 0 (start) | | | | | | {before.get('loss', '')} | {before.get('accuracy', '')} | |")
    for r in record.get("rounds", []):
        lines.append(f"| {r['round']} | {r['clients']} | {r['bytes_sent']:,} | {r['bytes_received']:,} | "
                     f"{r.get('train_loss', '')} | {r.get('update_norm', '')} | {r.get('eval_loss', '')} | {r.get('eval_accuracy', '')} | "
                     f"{r['seconds']} |")
    if "privacy" in record:
        p = record["privacy"]
        lines += ["", f"Privacy spent (client level): ε = {p['epsilon']} at δ = {p['delta']:g} after {p['rounds']} "
                  f"rounds, sampling rate {p['sampling_rate']}, noise multiplier {p['noise_multiplier']} "
                  f"({p['accountant']})."]
    return lines
