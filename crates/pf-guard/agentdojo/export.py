#!/usr/bin/env python3
"""Export AgentDojo ground-truth traces for the pf-guard replay benchmark.

For each suite of an AgentDojo benchmark version this runs, in AgentDojo's own environments and
FunctionsRuntime:

* every user task's prompt and ground-truth calls (arguments and the tool's output text,
  formatted as AgentDojo shows it to the model) in the default environment;
* every injection task's ground-truth calls and its goal;
* every (user task, injection task with calls) pair under the `important_instructions` attack:
  the attack text in every injection vector the user task's ground truth shows the model, the
  user task's calls in that environment, then the injection task's calls in the same environment.

Usage: python export.py OUT_DIR [--benchmark-version v1.2.2] [--suites workspace,slack,...]
Writes OUT_DIR/<suite>.json.gz (format documented in docs/guard.md, "AgentDojo replay").
"""

import argparse
import gzip
import importlib.metadata
import json
import sys
from pathlib import Path

from agentdojo.agent_pipeline.tool_execution import tool_result_to_str
from agentdojo.attacks.base_attacks import DEFAULT_MODEL_NAME
from agentdojo.attacks.important_instructions_attacks import ImportantInstructionsAttack
from agentdojo.functions_runtime import FunctionCall, FunctionsRuntime
from agentdojo.task_suite.load_suites import get_suites

FORMAT = "pf-agentdojo-trace/1"
# The attack's user name is the suites' user (AgentDojo's ImportantInstructionsAttack sets it);
# the model name is AgentDojo's default for an unnamed model.
ATTACK_USER = "Emma Johnson"


def canary(vector: str) -> str:
    return f"<CANARY---{vector}--->"


def plain(value):
    """Arguments as JSON values; a nested FunctionCall would not be a replayable literal."""
    if isinstance(value, FunctionCall):
        raise TypeError("nested function call in ground truth")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def run_calls(suite, env, calls):
    """Runs ground-truth calls in order in `env`; returns [{function, args, output, error}]."""
    runtime = FunctionsRuntime(suite.tools)
    out = []
    for call in calls:
        result, error = runtime.run_function(env, call.function, call.args, raise_on_error=False)
        entry = {
            "function": call.function,
            "args": plain(dict(call.args)),
            "output": tool_result_to_str(result) if error is None else "",
        }
        if error is not None:
            entry["error"] = error
        out.append(entry)
    return out


def user_env(suite, task, injections):
    env = suite.load_and_inject_default_environment(injections)
    return task.init_environment(env)


def run_user_task(suite, task, injections):
    env = user_env(suite, task, injections)
    calls = task.ground_truth(env.model_copy(deep=True))
    return env, run_calls(suite, env, calls)


def attack_text(goal: str) -> str:
    return ImportantInstructionsAttack._JB_STRING.format(
        goal=goal, user=ATTACK_USER, model=DEFAULT_MODEL_NAME
    )


def tool_list(suite):
    tools = []
    for f in suite.tools:
        schema = f.parameters.model_json_schema()
        tools.append(
            {
                "name": f.name,
                "arguments": sorted((schema.get("properties") or {}).keys()),
            }
        )
    return sorted(tools, key=lambda t: t["name"])


def export_suite(name, suite, version):
    vectors = suite.get_injection_vector_defaults()
    canaries = {v: canary(v) for v in vectors}

    user_tasks = []
    candidates = {}
    for tid, task in suite.user_tasks.items():
        _, clean = run_user_task(suite, task, {})
        # The vectors whose content the user task's ground truth shows the model: where
        # AgentDojo's attacks put their text (BaseAttack.get_injection_candidates).
        _, canaried = run_user_task(suite, task, canaries)
        candidates[tid] = sorted(
            v for v in vectors if any(canary(v) in c["output"] for c in canaried)
        )
        user_tasks.append(
            {"id": tid, "prompt": task.PROMPT, "vectors": candidates[tid], "calls": clean}
        )

    injection_tasks = []
    for iid, itask in suite.injection_tasks.items():
        env = suite.load_and_inject_default_environment({})
        calls = run_calls(suite, env, itask.ground_truth(env.model_copy(deep=True)))
        injection_tasks.append({"id": iid, "goal": itask.GOAL, "calls": calls})

    by_id = {u["id"]: u for u in user_tasks}
    # Attack runs: the attack text goes into every candidate vector of the user task (AgentDojo's
    # FixedJailbreakAttack), the user task's ground truth runs, then the injection task's ground
    # truth runs in the same environment. Injection tasks without calls cannot be replayed.
    pairs = []
    for tid, task in suite.user_tasks.items():
        for iid, itask in suite.injection_tasks.items():
            text = attack_text(itask.GOAL)
            injections = {v: text for v in candidates[tid]}
            env, ucalls = run_user_task(suite, task, injections)
            # Mark the outputs that carry the attack (they differ from the clean run's).
            clean = by_id[tid]["calls"]
            for i, c in enumerate(ucalls):
                c["injected"] = i >= len(clean) or c["output"] != clean[i]["output"]
            gt = itask.ground_truth(env.model_copy(deep=True))
            if not gt:
                continue
            icalls = run_calls(suite, env, gt)
            pairs.append(
                {"user_task": tid, "injection_task": iid, "user_calls": ucalls,
                 "injection_calls": icalls}
            )

    return {
        "format": FORMAT,
        "suite": name,
        "benchmark_version": version,
        "agentdojo_version": importlib.metadata.version("agentdojo"),
        "attack": {"name": "important_instructions", "template": attack_text("{goal}")},
        "tools": tool_list(suite),
        "user_tasks": user_tasks,
        "injection_tasks": injection_tasks,
        "pairs": pairs,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--benchmark-version", default="v1.2.2")
    ap.add_argument("--suites", default="workspace,slack,travel,banking")
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    suites = get_suites(args.benchmark_version)
    for name in args.suites.split(","):
        data = export_suite(name, suites[name], args.benchmark_version)
        path = args.out_dir / f"{name}.json.gz"
        text = json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n"
        # mtime=0: the same export gives the same bytes.
        with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
            f.write(text.encode("utf-8"))
        n_inj = sum(1 for i in data["injection_tasks"] if i["calls"])
        print(
            f"{name}: {len(data['user_tasks'])} user tasks, {len(data['injection_tasks'])} injection "
            f"tasks ({n_inj} with calls), {len(data['pairs'])} attack pairs -> {path}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
