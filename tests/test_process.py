"""Agent processes: streamed logs, timeouts and interrupts that stop the whole process group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from conftest import make_repo

from kittydoit.process import ProcessRunner, process_start_time, stop_recorded


def alive(pid: int) -> bool:
    """Tell whether *pid* runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: list[int], seconds: float = 10) -> list[int]:
    end = time.monotonic() + seconds
    while time.monotonic() < end and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def python_c(
    cwd: Path, code: str, *, timeout: float = 60, start_new_session: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run *code* in a new Python that imports this checkout's kittydoit."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=timeout, start_new_session=start_new_session, env=env)  # fmt: skip


def script(tmp_path: Path, code: str) -> list[str]:
    path = tmp_path / "agent.py"
    path.write_text(code)
    return [sys.executable, str(path)]


PARENT_WITH_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 60)
"""


def test_output_streams_into_the_log_while_the_agent_runs(tmp_path: Path) -> None:
    argv = script(tmp_path, "import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('second')\n")
    log = tmp_path / "agent.log"
    seen_midway: list[str] = []

    def watch() -> None:
        time.sleep(0.8)
        seen_midway.append(log.read_text())

    watcher = threading.Thread(target=watch)
    watcher.start()
    result = ProcessRunner().run(argv, cwd=tmp_path, log_path=log)
    watcher.join()
    assert "first" in seen_midway[0] and "second" not in seen_midway[0]
    assert result and result.returncode == 0
    assert result.stdout == "first\nsecond\n"
    assert log.read_text().endswith("first\nsecond\n")


def test_prompt_file_is_stdin_and_stdin_is_closed_otherwise(tmp_path: Path) -> None:
    argv = script(tmp_path, "import sys\nprint(repr(sys.stdin.read()))\n")
    prompt = tmp_path / "prompt.md"
    prompt.write_text("do it\n")
    runner = ProcessRunner()
    assert runner.run(argv, cwd=tmp_path, log_path=tmp_path / "a.log", stdin_path=prompt).stdout == "'do it\\n'\n"
    assert runner.run(argv, cwd=tmp_path, log_path=tmp_path / "b.log").stdout == "''\n"


def test_timeout_stops_the_whole_group(tmp_path: Path) -> None:
    argv = script(tmp_path, PARENT_WITH_CHILD)
    result = ProcessRunner(grace_seconds=1).run(argv, cwd=tmp_path, log_path=tmp_path / "a.log", timeout=1.5)
    assert result.timed_out and not result and result.returncode is None
    assert 1.4 < result.duration < 6
    child = int(result.stdout.split()[0])
    assert wait_gone([child]) == []


def test_child_left_behind_after_exit_is_stopped(tmp_path: Path) -> None:
    argv = script(tmp_path, PARENT_WITH_CHILD)
    argv.append("0.2")
    result = ProcessRunner(grace_seconds=1, drain_seconds=0.5).run(argv, cwd=tmp_path, log_path=tmp_path / "a.log")
    assert result.returncode == 0 and result.duration < 5
    assert wait_gone([int(result.stdout.split()[0])]) == []


def test_finished_output_then_hang_is_stopped_and_kept(tmp_path: Path) -> None:
    argv = script(tmp_path, "import time\nprint('RESULT: 42', flush=True)\ntime.sleep(60)\n")
    runner = ProcessRunner(grace_seconds=1, finish_wait=0.5)
    result = runner.run(
        argv, cwd=tmp_path, log_path=tmp_path / "a.log", timeout=30, is_finished=lambda out: "RESULT:" in out
    )
    assert result.finished_then_hung and result
    assert result.duration < 10
    assert "RESULT: 42" in result.stdout


def test_idle_timeout(tmp_path: Path) -> None:
    argv = script(tmp_path, "import time\nprint('hi', flush=True)\ntime.sleep(60)\n")
    result = ProcessRunner(grace_seconds=1).run(argv, cwd=tmp_path, log_path=tmp_path / "a.log", idle_timeout=1)
    assert result.idle_timed_out and not result


RUNNER_SCRIPT = """
import sys
from pathlib import Path
from kittydoit.process import ProcessRunner
tmp = Path(sys.argv[1])
try:
    ProcessRunner(grace_seconds=1).run(sys.argv[2:], cwd=tmp, log_path=tmp / "a.log", pid_file=tmp / "pids" / "x.pid")
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_ctrl_c_stops_the_agent_group_and_removes_the_pid_file(tmp_path: Path) -> None:
    agent = script(tmp_path, PARENT_WITH_CHILD)
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER_SCRIPT, str(tmp_path), *agent], stdout=subprocess.PIPE, text=True
    )
    log = tmp_path / "a.log"
    end = time.monotonic() + 10
    while time.monotonic() < end and not (log.exists() and log.read_text().strip()):
        time.sleep(0.05)
    child = int(log.read_text().split()[0])
    record = (tmp_path / "pids" / "x.pid").read_text()
    runner.send_signal(signal.SIGINT)
    out, _ = runner.communicate(timeout=20)
    assert "interrupted" in out
    assert wait_gone([child]) == []
    assert '"pgid"' in record
    assert not (tmp_path / "pids" / "x.pid").exists()


def test_agent_and_its_escaped_children_die_with_the_process_that_ran_them(tmp_path: Path) -> None:
    escaping = PARENT_WITH_CHILD.replace("subprocess.Popen([", "subprocess.Popen(start_new_session=True, args=[")
    agent = script(tmp_path, escaping)
    runner = subprocess.Popen([sys.executable, "-c", RUNNER_SCRIPT, str(tmp_path), *agent])
    log = tmp_path / "a.log"
    end = time.monotonic() + 30
    while time.monotonic() < end and not (log.exists() and log.read_text().strip()):
        time.sleep(0.05)
    child = int(log.read_text().split()[0])
    assert os.getsid(child) == child  # it left the agent's session and process group
    recorded = json.loads((tmp_path / "pids" / "x.pid").read_text())
    runner.kill()  # SIGKILL: nothing in the runner gets to clean up; its agent's supervisor does
    runner.wait()
    assert wait_gone([child, recorded["pgid"]], seconds=5) == []
    assert stop_recorded(tmp_path / "pids", grace_seconds=1) == []  # nothing left for a later run


def test_stop_recorded_stops_a_group_that_outlived_its_supervisor(tmp_path: Path) -> None:
    group = subprocess.Popen(script(tmp_path, PARENT_WITH_CHILD), stdout=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    assert group.stdout is not None
    child = int(group.stdout.readline())
    (tmp_path / "pids").mkdir()
    record = {"pgid": group.pid, "started": process_start_time(group.pid)}
    (tmp_path / "pids" / "x.pid").write_text(json.dumps(record))
    assert stop_recorded(tmp_path / "pids", grace_seconds=1) == [group.pid]
    group.communicate(timeout=10)
    assert wait_gone([child]) == []
    assert list((tmp_path / "pids").iterdir()) == []


def test_stop_recorded_leaves_a_reused_pid_alone(tmp_path: Path) -> None:
    (tmp_path / "pids").mkdir()
    (tmp_path / "pids" / "x.pid").write_text(f'{{"pgid": {os.getpid()}, "started": "1"}}')
    assert stop_recorded(tmp_path / "pids") == []
    assert alive(os.getpid())


def test_supervisors_that_reported_their_agents_end_are_reaped_at_the_next_start(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from kittydoit.process import ProcessRunner, discard_spare\n"
        "runner = ProcessRunner()\n"
        "for code in (0, 3, 0, 5, 0, 0):\n"
        "    result = runner.run([sys.executable, '-c', f'print(1); raise SystemExit({code})'], cwd=Path('.'),\n"
        "                        log_path=Path('agent.log'))\n"
        "    assert (result.returncode, result.stdout) == (code, '1\\n'), result\n"
        "me = os.getpid()\n"
        "print(len(Path(f'/proc/{me}/task/{me}/children').read_text().split()))\n"
        "discard_spare()\n"
        "print(len(Path(f'/proc/{me}/task/{me}/children').read_text().split()))\n"
    )
    result = python_c(tmp_path, code)
    assert result.returncode == 0, result.stderr
    during, after = map(int, result.stdout.split())
    assert during <= 2  # the last supervisor, ending, and the spare for the next agent: no zombie per run piles up
    assert after <= 1  # the spare is gone


# ---- spare supervisors ---------------------------------------------------------------------------------------

SPARE_RUN = """
import os, signal, sys, time
from pathlib import Path
from kittydoit import process
from kittydoit.process import ProcessRunner
runner = ProcessRunner(grace_seconds=1)
agent = [sys.executable, '-c', 'import os, time; time.sleep(float(os.environ.get("NAP", "0"))); print(os.getppid())']
first = runner.run(agent, cwd=Path('.'), log_path=Path('agent.log'))
spare = process._SPARE[os.getpid()].pid
{between}
second = runner.run(agent, cwd=Path('.'), log_path=Path('agent.log'), env={{**os.environ, "NAP": "0.3"}})
print(first.stdout.strip(), spare, second.stdout.strip(), second.returncode, flush=True)
process.discard_spare()
"""


def run_spare_script(tmp_path: Path, between: str = "") -> list[int]:
    result = python_c(tmp_path, SPARE_RUN.format(between=between), start_new_session=True)
    assert result.returncode == 0, result.stderr
    return [int(word) for word in result.stdout.split()]


FIRST_IMPLEMENT = """
import os, sys
from kittydoit import process
from kittydoit.git import Git
at_worktree, used = [], []
make = Git.prepare_worktree
def prepare_worktree(self, *args, **kwargs):
    ready = process._SPARE.get(os.getpid())
    at_worktree.append(ready.pid if ready else None)
    return make(self, *args, **kwargs)
Git.prepare_worktree = prepare_worktree
take = process.spare
def spare():
    ready = take()
    used.append(ready.pid)
    return ready
process.spare = spare
from kittydoit.cli import main
code = main(["-n", "0", "run", "implement"])
print(code, at_worktree[0], used[0], flush=True)
"""


def test_an_implement_forks_its_first_agents_supervisor_before_making_the_worktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"WP01": []})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    result = subprocess.run([sys.executable, "-c", FIRST_IMPLEMENT], cwd=repo.root, env=env, capture_output=True,
                            text=True, timeout=60, start_new_session=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    code, at_worktree, used = result.stdout.split()[-3:]
    assert code == "0", result.stdout
    assert at_worktree != "None"  # the spare was there when git began the worktree
    assert used == at_worktree  # and the first agent started under it


def test_the_next_agent_starts_under_the_spare_supervisor_forked_while_the_last_one_ran(tmp_path: Path) -> None:
    first_supervisor, spare, second_supervisor, code = run_spare_script(tmp_path)
    assert spare != first_supervisor
    assert second_supervisor == spare
    assert code == 0


def test_a_stop_signal_sent_to_the_runs_process_group_does_not_reach_a_waiting_spare(tmp_path: Path) -> None:
    # A Ctrl-C or hang-up reaches every process of the terminal's group: it is meant for the run, which stops its
    # agents itself; a run that goes on must not see its next agent stopped by it. The script stands for a doit
    # worker, which ignores both (kittydoit.workers).
    _, spare, second_supervisor, code = run_spare_script(
        tmp_path,
        "assert os.getsid(spare) == spare, 'the spare is in a session of its own'\n"
        "for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):\n"
        "    signal.signal(sig, signal.SIG_IGN)\n"
        "    os.killpg(0, sig)\n"
        "time.sleep(0.2)",
    )
    assert second_supervisor == spare
    assert code == 0


def test_a_stop_sent_after_the_order_and_before_the_agent_started_stops_the_agent(tmp_path: Path) -> None:
    # The stop a worker sends when a Ctrl-C comes as it hands the spare its order: the spare is held still
    # (SIGSTOP) until the stop is sent, so the stop is surely pending before the spare has read its order.
    code = (
        "import os, signal, sys, time\n"
        "from pathlib import Path\n"
        "from kittydoit import process\n"
        "process.prepare_spare()\n"
        "spare = process._SPARE[os.getpid()].pid\n"
        "os.kill(spare, signal.SIGSTOP)\n"
        "proc = process._Supervised.start([sys.executable, '-c', 'import time; time.sleep(30)'], cwd=Path('.'),\n"
        "                                 env=None, stdin_path=None, grace=1.0, drain=1.0)\n"
        "assert proc.pid == spare\n"
        "proc.send_signal(signal.SIGTERM)\n"
        "os.kill(spare, signal.SIGCONT)\n"
        "started = time.monotonic()\n"
        "proc.wait(timeout=20)\n"
        "said = proc.report.read().decode()\n"
        "print(round(time.monotonic() - started, 1), said.split()[-1], flush=True)\n"
    )
    result = python_c(tmp_path, code)
    assert result.returncode == 0, result.stderr
    took, agent_exit = result.stdout.split()
    assert float(took) < 10  # not the agent's 30 s
    assert int(agent_exit) == -signal.SIGTERM


def test_a_waiting_spare_holds_none_of_the_runs_output_and_dies_with_its_parent(tmp_path: Path) -> None:
    # Something else keeps the spare's order pipe open (here a child forked after it, which sleeps): the spare is
    # not told by the pipe's end that its parent is gone, yet whoever reads the run's output sees its end when the
    # run ends, and the spare goes with its parent.
    code = (
        "import os, time\n"
        "from kittydoit import process\n"
        "process.prepare_spare()\n"
        "spare = process._SPARE[os.getpid()].pid\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    null = os.open(os.devnull, os.O_WRONLY)\n"
        "    os.dup2(null, 1)\n"
        "    os.dup2(null, 2)\n"
        "    time.sleep(30)\n"
        "    os._exit(0)\n"
        "end = time.monotonic() + 5\n"
        "while os.readlink(f'/proc/{spare}/fd/1') != os.devnull and time.monotonic() < end:\n"
        "    time.sleep(0.01)\n"
        "print(spare, child, os.readlink(f'/proc/{spare}/fd/1'), flush=True)\n"
        "os._exit(0)\n"
    )
    started = time.monotonic()
    result = python_c(tmp_path, code, timeout=25)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 20  # not the sleeping child's 30 s
    spare, child, output = result.stdout.split()
    try:
        assert output == os.devnull
        assert wait_gone([int(spare)]) == []
    finally:
        os.kill(int(child), signal.SIGKILL)


def test_a_spare_that_died_is_replaced(tmp_path: Path) -> None:
    _, spare, second_supervisor, code = run_spare_script(tmp_path, "os.kill(spare, signal.SIGKILL); time.sleep(0.2)")
    assert second_supervisor != spare
    assert code == 0


def test_a_spare_ends_with_the_process_that_forked_it(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "from kittydoit import process\n"
        "process.prepare_spare()\n"
        "print(process._SPARE[os.getpid()].pid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    result = python_c(tmp_path, code)
    assert result.returncode == -signal.SIGKILL
    spare = int(result.stdout)
    assert wait_gone([spare]) == []


def test_a_forked_child_does_not_take_its_parents_spare(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from kittydoit import process\n"
        "from kittydoit.process import ProcessRunner\n"
        "process.prepare_spare()\n"
        "mine = process._SPARE[os.getpid()].pid\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    result = ProcessRunner().run([sys.executable, '-c', 'import os; print(os.getppid())'], cwd=Path('.'),\n"
        "                                 log_path=Path('agent.log'))\n"
        "    process.discard_spare()\n"
        "    os._exit(0 if int(result.stdout) != mine else 3)\n"
        "_, status = os.waitpid(child, 0)\n"
        "print(os.waitstatus_to_exitcode(status), process._SPARE[os.getpid()].pid == mine, flush=True)\n"
        "process.discard_spare()\n"
    )
    result = python_c(tmp_path, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "True"]


def test_work_put_off_is_done_while_the_next_agent_runs_and_only_by_the_process_that_put_it_off(
    tmp_path: Path,
) -> None:
    # The agent waits for the file the put-off work writes: done before the agent's start or after its end, the
    # agent would time out. A forked child's next agent does not do its parent's work; a failing write is ignored;
    # an agent that ends before the work is due has it done right after its end.
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from kittydoit import process\n"
        "from kittydoit.process import ProcessRunner, after_next_start\n"
        "def write(name):\n"
        "    Path(name).write_text(str(os.getpid()))\n"
        "after_next_start(lambda: write('parents'))\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    ProcessRunner().run(['true'], cwd=Path('.'), log_path=Path('child.log'))\n"
        "    process.discard_spare()\n"
        "    os._exit(0)\n"
        "os.waitpid(child, 0)\n"
        "print(Path('parents').exists(), flush=True)\n"
        "after_next_start(lambda: write('missing/folder'))\n"
        "wait = 'for i in $(seq 100); do [ -e parents ] && exit 0; sleep 0.05; done; exit 7'\n"
        "result = ProcessRunner().run(['sh', '-c', wait], cwd=Path('.'), log_path=Path('agent.log'), timeout=20)\n"
        "print(result.returncode, Path('parents').read_text() == str(os.getpid()), process._PUT_OFF, flush=True)\n"
        "after_next_start(lambda: write('short'))\n"
        "ProcessRunner().run(['true'], cwd=Path('.'), log_path=Path('short.log'))\n"
        "print(Path('short').exists(), flush=True)\n"
        "process.discard_spare()\n"
    )
    result = python_c(tmp_path, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "0", "True", "[]", "True"]  # an agent that ended at once: after it


def test_a_stop_held_through_a_step_reaches_a_doit_workers_handler_as_raised_inside_its_task_loop(
    tmp_path: Path,
) -> None:
    # A worker's SIGTERM handler stops the task it runs, or ends a worker that has no task yet; it tells them apart
    # by the frame the signal came in. A stop held until a step was done (an agent being handed to its supervisor)
    # must be seen coming from that step: ending the worker there would leave the agent without its stop.
    code = (
        "import os, signal\n"
        "from kittydoit import workers\n"
        "from kittydoit.process import signals_held\n"
        "def execute_task_subprocess():\n"  # doit's worker loop, by the name the handler looks for
        "    with signals_held():\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "signal.signal(signal.SIGTERM, workers._Once())\n"
        "try:\n"
        "    execute_task_subprocess()\n"
        "except KeyboardInterrupt:\n"
        "    print('stopping its task', flush=True)\n"
    )
    result = python_c(tmp_path, code)
    assert (result.returncode, result.stdout) == (0, "stopping its task\n"), result.stderr


def test_a_stop_held_through_a_step_that_failed_is_still_delivered(tmp_path: Path) -> None:
    # With -n 0 the orchestrator runs git itself, in the terminal's process group: the Ctrl-C it holds back also
    # kills the git command, whose failure must not hide the stop (the run ended "failed" instead of interrupted).
    code = (
        "import os, signal\n"
        "from kittydoit.process import signals_held\n"
        "try:\n"
        "    with signals_held():\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        raise RuntimeError('git died of the same Ctrl-C')\n"
        "except KeyboardInterrupt as stop:\n"
        "    print('stopped after', type(stop.__context__).__name__, flush=True)\n"
    )
    result = python_c(tmp_path, code)
    assert (result.returncode, result.stdout) == (0, "stopped after RuntimeError\n"), result.stderr


# Delivers SIGNAL from inside multiprocessing's Queue._start_thread, between its two finalizers: the feeder thread
# runs and will be joined when the process exits, but it is told to end only by the second finalizer.
STOP_INSIDE_A_QUEUE_START = """
import multiprocessing, multiprocessing.util, os, signal, time
registered = []
real_init = multiprocessing.util.Finalize.__init__
def init(self, *args, **kwargs):
    real_init(self, *args, **kwargs)
    if not registered:
        registered.append(self)
        os.kill(os.getpid(), SIGNAL)
multiprocessing.util.Finalize.__init__ = init
"""


def test_a_stop_that_comes_while_a_queue_starts_its_thread_is_raised_after_it_and_the_worker_exits(
    tmp_path: Path,
) -> None:
    # Raised there, it left the queue's thread to be joined at exit and never ended: the worker hung until reaped.
    code = STOP_INSIDE_A_QUEUE_START.replace("SIGNAL", "signal.SIGTERM") + (
        "from kittydoit import workers\n"
        "workers.adopt(os.getppid())\n"
        "def execute_task_subprocess():\n"  # doit's worker loop, by the name the handler looks for
        "    queue = multiprocessing.Queue()\n"
        "    queue.put('a result')\n"  # starts the queue's thread: the SIGTERM comes in the middle
        "    print('put', flush=True)\n"
        "    time.sleep(5)\n"
        "try:\n"
        "    execute_task_subprocess()\n"
        "except KeyboardInterrupt:\n"
        "    print('stopping its task', flush=True)\n"
    )
    result = python_c(tmp_path, code, timeout=20)
    assert (result.returncode, result.stdout) == (0, "put\nstopping its task\n"), result.stderr


# Three forked "workers", as doit forks its -n workers after the reporter's hold_back. Each records when its first
# and second tasks began; in its first, the worker that takes the token waits a moment (its worktree) and then
# either starts an agent that records its own start, or ends without one.
FIRST_AGENT_FIRST = """
import json, os, sys, time
from pathlib import Path
from kittydoit import process, workers
from kittydoit.process import ProcessRunner
workers.HOLD = float(sys.argv[1])
workers.hold_back(3)
children = []
for number in range(3):
    child = os.fork()
    if child == 0:
        me = str(os.getpid())
        began = []
        with workers.turn():
            began.append(time.time())
            first = workers._first._opener == os.getpid()
            if first:
                time.sleep(0.3)
                if sys.argv[2] == "agent":
                    ProcessRunner().run(["sh", "-c", "date +%s.%N > agent; sleep 0.5"], cwd=Path("."),
                                        log_path=Path(me + ".log"))
                elif sys.argv[2] == "stuck":
                    time.sleep(2)
        with workers.turn():  # a later task never waits
            began.append(time.time())
        Path(me + ".json").write_text(json.dumps({"first": first, "began": began}))
        process.discard_spare()
        os._exit(0)
    children.append(child)
for child in children:
    os.waitpid(child, 0)
workers.release()
print(json.dumps([json.loads(Path(f"{child}.json").read_text()) for child in children]))
"""


def _first_agent_first(tmp_path: Path, hold: float, first_does: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    result = subprocess.run(
        [sys.executable, "-c", FIRST_AGENT_FIRST, str(hold), first_does], cwd=tmp_path, capture_output=True, text=True,
        check=False, timeout=60, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    workers_seen = json.loads(result.stdout)
    firsts = [w for w in workers_seen if w["first"]]
    assert len(firsts) == 1  # one token: one worker goes first
    return firsts[0], [w for w in workers_seen if not w["first"]]


def test_at_a_run_s_start_the_other_workers_wait_until_the_first_worker_s_agent_has_started(tmp_path: Path) -> None:
    first, others = _first_agent_first(tmp_path, hold=30, first_does="agent")
    agent_start = float((tmp_path / "agent").read_text())
    for worker in others:
        # let go once the agent was started (its shell stamps a moment later), not by the hold
        assert first["began"][0] + 0.3 <= worker["began"][0]
        assert agent_start - 0.1 <= worker["began"][0] < agent_start + 5
        assert worker["began"][1] - worker["began"][0] < 1  # and only at their first task
    assert first["began"][0] < agent_start


def test_a_first_task_that_ends_without_an_agent_lets_the_others_go_and_a_stuck_one_holds_them_only_so_long(
    tmp_path: Path,
) -> None:
    first, others = _first_agent_first(tmp_path, hold=30, first_does="nothing")
    for worker in others:
        assert first["began"][0] + 0.3 <= worker["began"][0] < first["began"][0] + 5
    first, others = _first_agent_first(tmp_path, hold=0.5, first_does="stuck")
    for worker in others:
        assert first["began"][0] + 0.5 <= worker["began"][0] < first["began"][0] + 2  # the hold, not the 2.3 s task
