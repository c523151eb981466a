"""`promptpo-bench show`: one screen about one finished run, from its run directory alone.

Every algorithm: the task, the budget it used, and the final held-out return with its 95% Student-t CI over the
held-out episodes and its normalised score. PromptPO runs also: per round, the candidates that ran, the best
return, failures by kind and tokens (from candidates/*.json and llm.jsonl), and the winning candidate's code.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from . import registry
from .errors import BenchError
from .records import load_record
from .statistics import ci95

_REQUEST = re.compile(r"r(\d+)_c(\d+)_a(\d+)\.json")


def _reference(env_id: str, env_kwargs: dict[str, Any]) -> registry.ReferenceScores | None:
    if not registry.is_registered(env_id):
        return None
    return registry.reference_scores(env_id, **env_kwargs)


def _rounds(run_dir: Path, curve: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Per round: candidates, attempts (answers incl. repairs), ok ones, best mean return, best so far (the curve),
    failures by kind, env steps and tokens (reflection included); and the tokens spent on the Feedback class."""
    rounds: dict[int, dict[str, Any]] = {}
    for path in sorted((run_dir / "candidates").glob("r*_c*_a*.json")):
        match = _REQUEST.fullmatch(path.name)
        if not match:
            continue
        attempt = json.loads(path.read_text())
        row = rounds.setdefault(int(match[1]), {"round": int(match[1]), "candidates": set(), "attempts": 0,
                                                "ran": 0, "best_return": None, "failures": Counter(),
                                                "env_steps": 0, "tokens": 0})
        row["candidates"].add(int(match[2]))
        row["attempts"] += 1
        row["env_steps"] += attempt.get("env_steps", 0)
        if attempt.get("failure"):
            row["failures"][attempt["failure"]["kind"]] += 1
        elif attempt.get("returns"):
            row["ran"] += 1
            mean = float(np.mean(attempt["returns"]))
            row["best_return"] = mean if row["best_return"] is None else max(row["best_return"], mean)
    feedback_tokens = 0
    journal = run_dir / "llm.jsonl"
    if journal.is_file():
        for line in journal.read_text().splitlines():
            entry = json.loads(line)
            match = re.match(r"r(\d+)/", entry.get("request_id", ""))
            usage = entry.get("usage") or {}
            tokens = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
            if match and int(match[1]) in rounds:
                rounds[int(match[1])]["tokens"] += tokens
            elif entry.get("request_id", "").startswith("feedback/"):
                feedback_tokens += tokens
    best_so_far = {p["round"]: p["mean_return"] for p in curve if "round" in p}
    return [{**row, "candidates": len(row["candidates"]), "failures": dict(row["failures"]),
             "best_so_far": best_so_far.get(index)} for index, row in sorted(rounds.items())], feedback_tokens


def summarize(run_dir: str | Path, code_lines: int = 12) -> dict[str, Any]:
    """What `show` prints, as one JSON-able dict."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BenchError(f"{run_dir} is not a directory")
    if not (run_dir / "record.json").is_file():
        points = len((run_dir / "curve.jsonl").read_text().splitlines()) if (run_dir / "curve.jsonl").is_file() else 0
        raise BenchError(f"{run_dir} has no record.json: not a finished run"
                         + (f" (curve.jsonl has {points} evaluations so far)" if points else ""))
    record = load_record(run_dir)
    final, totals = record["final_eval"], record["totals"]
    reference = _reference(record["env_id"], record["env_kwargs"])
    curve = record["curve"]
    summary: dict[str, Any] = {
        "run_dir": str(run_dir), "algorithm": record["algorithm"], "llm_model": (record.get("llm") or {}).get("model"),
        "env_id": record["env_id"], "env_kwargs": record["env_kwargs"], "seed": record["seed"],
        "family": registry.get(record["env_id"]).family if registry.is_registered(record["env_id"]) else None,
        "started_at": record["started_at"], "wall_time_s": record["wall_time_s"], "command": record["command"],
        "totals": totals,
        "final_eval": {"episodes": len(final["returns"]), "mean_return": final["mean_return"],
                       "ci95": ci95(final["returns"]), "success_rate": final.get("success_rate"),
                       "normalised_score": None if reference is None or final.get("failure")  # failed: no score
                       else registry.normalised(final["mean_return"], reference),
                       "failure": final.get("failure")},
        "reference": None if reference is None else {"random": reference.random, "optimal": reference.optimal},
        "curve": {"points": len(curve), "best_return": max((p["mean_return"] for p in curve), default=None),
                  "last_return": curve[-1]["mean_return"] if curve else None},
        "policy": record["policy"],
        "verification": (json.loads((run_dir / "verification.json").read_text())
                         if (run_dir / "verification.json").is_file() else None),  # a leaderboard entry
    }
    if (run_dir / "candidates").is_dir():
        extra = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
        code = (run_dir / record["policy"]["path"]).read_text().splitlines()
        rounds, feedback_tokens = _rounds(run_dir, curve)
        summary["promptpo"] = {"rounds": rounds, "feedback_tokens": feedback_tokens,
                               "winner": extra.get("best_request_id"),
                               "stopped": extra.get("stopped"), "code_lines": len(code),
                               "code_head": code[:code_lines]}
    return summary


def _num(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def format_summary(s: dict[str, Any]) -> str:
    """`summarize`'s dict as one screen of text."""
    totals, final = s["totals"], s["final_eval"]
    kwargs = f" {json.dumps(s['env_kwargs'])}" if s["env_kwargs"] else ""
    method = s["algorithm"] + (f" ({s['llm_model']})" if s["llm_model"] else "")
    tokens = totals["prompt_tokens"] + totals["completion_tokens"]
    budget = f"{totals['env_steps']:,} env steps, {totals['episodes']:,} episodes"
    if tokens:
        budget += (f", {totals['llm_calls']} LLM calls, {tokens:,} tokens ({totals['prompt_tokens']:,} prompt + "
                   f"{totals['completion_tokens']:,} completion)")
    if totals.get("cost_usd") is not None:
        budget += f", ${totals['cost_usd']:.2f}"
    spread = "(one episode: no CI)" if final["ci95"] is None else f"± {final['ci95']:.2f} (95% CI)"
    lines = [f"{s['run_dir']}",
             f"  task       {s['env_id']}{kwargs}" + (f"  ({s['family']})" if s["family"] else ""),
             f"  algorithm  {method}, seed {s['seed']}, started {s['started_at']}, {s['wall_time_s']:,.0f} s",
             f"  budget     {budget}",
             f"  final      held-out mean return {final['mean_return']:,.2f} {spread} over {final['episodes']} "
             "episodes" + (f", success rate {final['success_rate']:.2f}" if final["success_rate"] is not None else "")]
    if final["normalised_score"] is not None:
        lines.append(f"  score      {final['normalised_score']:.3f} normalised (random {s['reference']['random']:,.2f}"
                     f" = 0, optimal {s['reference']['optimal']:,.2f} = 1)")
    if final.get("failure"):
        lines.append(f"  note       the final policy failed during evaluation: {final['failure'].get('kind')}: "
                     f"{final['failure'].get('message')}")
    points = s["curve"]["points"]
    lines.append(f"  curve      {points} evaluation{'' if points == 1 else 's'}, best {_num(s['curve']['best_return'])}, last "
                 f"{_num(s['curve']['last_return'])}")
    lines.append(f"  policy     {s['policy']['path']} ({s['policy']['kind']}, sha256 {s['policy']['sha256'][:12]})")
    if s["verification"]:
        v = s["verification"]
        lines.append(f"  verified   {v['mode']} reproduction on {v['verified_at']}: re-evaluated mean return "
                     f"{v['reevaluated_mean_return']:,.2f}")
    promptpo = s.get("promptpo")
    if promptpo:
        header = ("round", "candidates ran", "attempts", "round best", "best so far", "env steps", "tokens",
                  "failures")
        rows = [(str(r["round"]), f"{r['ran']}/{r['candidates']}", str(r["attempts"]), _num(r["best_return"]),
                 _num(r["best_so_far"]), f"{r['env_steps']:,}", f"{r['tokens']:,}",
                 ", ".join(f"{k} {v}" for k, v in sorted(r["failures"].items())) or "-")
                for r in promptpo["rounds"]]
        widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
        lines += ["", *("  " + "  ".join(c.rjust(w) if 0 < i < len(header) - 1 else c.ljust(w) for i, (c, w) in
                                         enumerate(zip(row, widths))).rstrip() for row in [header] + rows)]
        lines.append(f"  returns: mean over each candidate's episodes; tokens: answers, repairs and reflection "
                     f"(the Feedback class took {promptpo['feedback_tokens']:,} more)")
        if promptpo["stopped"]:
            lines.append(f"  stopped early: {promptpo['stopped']}")
        shown = len(promptpo["code_head"])
        lines += ["", f"  winner {promptpo['winner']} ({s['policy']['path']}, {promptpo['code_lines']} lines"
                      + (f", first {shown}" if shown < promptpo["code_lines"] else "") + "):"]
        lines += [f"    {line}" for line in promptpo["code_head"]]
    return "\n".join(lines)
