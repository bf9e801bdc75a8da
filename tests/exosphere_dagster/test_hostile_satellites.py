"""Satellites that raise BaseException, return unstorable outputs or unprintable errors lose
nothing: the item fails (redacted), its siblings go on, the counts add up. A real interrupt of
the process still stops the step. Checked on the step body alone and through real runs."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets as random_secrets
import signal
import threading
from pathlib import Path

import pytest
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._serdes import serialize_value
from dagster._utils.interrupts import raise_interrupts_as
from hostile_satellites import HostileConfig, hostile, hostile_async, misbehave
from test_execute import node

from clusters import cluster, failure_branch, fan_out, note, satellite_entry, write_cluster
from exosphere_dagster.entry.launch import run_cluster_file
from exosphere_dagster.runtime.checkpoint import CheckpointStore
from exosphere_dagster.runtime.execute import ChunkJob, run_chunk
from exosphere_dagster.runtime.items import seed_items
from satellite_ops.registry import define_satellite

LABELS = ["item-0", "item-1", "item-2", "item-3"]
HOSTILE = "item-2"
EXPECTED = {  # behaviour -> (error type, error text after "<type>: ", attempts with retries=2)
    "system-exit": ("SystemExit", "system-exit for item-2 with token ***", 1),
    "keyboard-interrupt": ("KeyboardInterrupt", "keyboard-interrupt for item-2 with token ***", 1),
    "custom-base": ("HostileBase", "custom-base for item-2 with token ***", 1),
    "unprintable": ("UnprintableError", "<unprintable>", 3),
    "unpicklable": ("UnstorableOutputError", "output of item {id} cannot be stored: ", 1),
}


def batched(items):
    """A batched satellite that reports one outcome per item, exceptions included."""
    outcomes = []
    for item in items:
        try:
            outcomes.append(misbehave(item.config))
        except BaseException as exc:  # noqa: BLE001 - the batched contract: one exception per item
            outcomes.append(exc)
    return outcomes


async def batched_async(items):
    return batched(items)


KINDS = {
    "sync": (hostile, False),
    "async": (hostile_async, False),
    "batched": (batched, True),
    "batched-async": (batched_async, True),
}


def hostile_job(tmp_path: Path, fn, behaviours: dict, *, batched_: bool = False, **kw) -> ChunkJob:
    token = f"s3cr3t-{random_secrets.token_hex(8)}"
    config = {
        "label": "${{ run.input.label }}",
        "token": token,
        "log_dir": str(tmp_path),
        "behaviours": behaviours,
    }
    definition = define_satellite("satellite/test/x", fn, HostileConfig, batched=batched_)

    async def no_wait(seconds: float) -> None:
        pass

    return ChunkJob(
        node=node(config=config, **{"retries": 2, **kw}),
        definition=definition,
        base_scope={"run": {}},
        log=logging.getLogger("hostile"),
        checkpoint=CheckpointStore(tmp_path / "ckpt").log_for("run", "sat", "c0"),
        sleep=no_wait,
        secret_values=(token,),
    )


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("behaviour", list(EXPECTED))
def test_a_hostile_item_fails_alone_and_its_siblings_go_on(tmp_path, caplog, kind, behaviour):
    fn, is_batched = KINDS[kind]
    job = hostile_job(tmp_path, fn, {HOSTILE: behaviour}, batched_=is_batched)
    token = job.secret_values[0]
    items = seed_items([{"label": label} for label in LABELS])
    caplog.set_level(logging.INFO, logger="hostile")

    children, report = run_chunk(job, items)

    assert report.items_in == len(LABELS) == report.succeeded + len(report.failed)
    assert sorted(c.value["label"] for c in children) == ["item-0", "item-1", "item-3"]
    (failed,) = report.failed
    error_type, text, attempts = EXPECTED[behaviour]
    assert failed.item.id == items[2].id
    assert (failed.error_type, failed.attempts) == (error_type, attempts)
    assert failed.error.startswith(f"{error_type}: {text.format(id=items[2].id)}")
    assert token not in failed.error
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("attempt" in w and "failed" in w for w in warnings) == attempts
    assert not any(token in w for w in warnings)
    stored = job.checkpoint.load()  # the good items are checkpointed; the bad one wrote nothing
    assert sorted(stored) == sorted(items[i].id for i in (0, 1, 3))


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_whole_batch_call_raising_base_exception_fails_each_item(tmp_path, is_async):
    def whole(items):
        raise SystemExit(f"the batch gives up, token {items[0].config.token}")

    async def whole_async(items):
        whole(items)

    job = hostile_job(tmp_path, whole_async if is_async else whole, {}, batched_=True)
    _, report = run_chunk(job, seed_items([{"label": label} for label in LABELS]))
    assert report.items_in == len(report.failed) == 4 and report.succeeded == 0
    assert {f.error for f in report.failed} == {"SystemExit: the batch gives up, token ***"}
    assert {f.attempts for f in report.failed} == {1}


def test_a_satellite_raising_cancelled_error_fails_only_its_item(tmp_path):
    """A CancelledError the satellite raises itself (the step is not being cancelled)."""

    async def cancels(config, input):
        if config.label == HOSTILE:
            raise asyncio.CancelledError("an inner task was cancelled")
        return [{"label": config.label}]

    job = hostile_job(tmp_path, cancels, {})
    children, report = run_chunk(job, seed_items([{"label": label} for label in LABELS]))
    assert len(children) == 3 and [f.error_type for f in report.failed] == ["CancelledError"]
    assert report.failed[0].attempts == 1


def interrupting(release: threading.Event):
    """Satellites that send SIGINT to their own process, as Dagster's run termination does."""

    def sync_fn(config, input):
        if config.label == HOSTILE:
            os.kill(os.getpid(), signal.SIGINT)
        release.wait(60)  # until the test is over: the step must not wait for it
        return [{"label": config.label}]

    async def async_fn(config, input):
        if config.label == HOSTILE:
            os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(60)
        return [{"label": config.label}]

    async def callback_fn(config, input):
        if config.label == HOSTILE:  # the signal lands while the loop runs a callback
            asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGINT)
        await asyncio.sleep(60)
        return [{"label": config.label}]

    return {"sync": sync_fn, "async": async_fn, "loop-callback": callback_fn}


@pytest.mark.parametrize("kind", ["sync", "async", "loop-callback"])
def test_a_real_interrupt_still_stops_the_step(tmp_path, kind):
    """Under Dagster's own step signal handler (raise_interrupts_as) the interrupt raised in the
    satellite's frame or in the loop propagates; with Python's default handler asyncio.run turns
    it into cancellation of the step and KeyboardInterrupt."""
    assert threading.current_thread() is threading.main_thread()
    release = threading.Event()
    try:
        fn = interrupting(release)[kind]
        items = seed_items([{"label": label} for label in LABELS])
        with (
            raise_interrupts_as(DagsterExecutionInterruptedError),
            pytest.raises(DagsterExecutionInterruptedError),
        ):
            run_chunk(hostile_job(tmp_path, fn, {}), items)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(KeyboardInterrupt):
            run_chunk(hostile_job(tmp_path / "2", fn, {}), items)
    finally:
        release.set()


# -- through real runs ----------------------------------------------------------------------------
BEHAVIOURS = {
    "item-1": "system-exit",
    "item-2": "keyboard-interrupt",
    "item-3": "custom-base",
    "item-4": "unpicklable",
    "item-5": "unprintable",
}


@pytest.fixture
def hostile_registered(satellite_modules):
    satellite_modules("byo_satellites", "hostile_satellites")


def hostile_cluster(uses, var, log_dir, behaviours, count, timeout=None) -> dict:
    """``count`` items, of which ``hostile`` (``uses``) misbehaves as ``behaviours`` say; its
    failures are routed to ``note``. The token comes from the environment variable ``var``."""
    hostile = satellite_entry(
        uses,
        "hostile",
        {
            "label": "$${{ satellites.items.output.label }}",
            "token": "${{ secrets.TOKEN }}",
            "log_dir": log_dir,
            "behaviours": behaviours,
        },
        **({"timeout": timeout} if timeout else {}),
    )
    message = "${{ failure.satellite }} ${{ failure.error_type }} ${{ failure.error }}"
    return cluster(
        f"test/hostile-{uses.rsplit('/', 1)[-1]}",
        [fan_out("items", count=count, prefix="item-"), hostile],
        retries=1,
        delay=0,
        secrets={"TOKEN": f"env:{var}"},
        failure=failure_branch("items", [note("note", log_dir, message)]),
    )


def run_hostile(tmp_path, instance, monkeypatch, *, uses, behaviours, count=8, **kw):
    """Run a hostile cluster; return (result, run tags, failure notes, secret value)."""
    token = f"s3cr3t-{random_secrets.token_hex(12)}"
    var = f"HOSTILE_TOKEN_{random_secrets.token_hex(4).upper()}"
    monkeypatch.setenv(var, token)
    log_dir = tmp_path / "calls"
    log_dir.mkdir()
    spec = hostile_cluster(uses, var, log_dir, behaviours, count, kw.pop("timeout", None))
    path = write_cluster(tmp_path, "hostile.yml", spec)
    result = run_cluster_file(path, instance=instance, **kw)
    tags = dict(instance.get_run_by_id(result.run_id).tags)
    notes_file = log_dir / "failures.log"
    notes = sorted(notes_file.read_text().splitlines()) if notes_file.exists() else []
    return result, tags, notes, token


def assert_nothing_lost_or_leaked(instance, result, tags, notes, token, routed):
    """The run succeeded, counted 8 items and routed ``routed`` (type -> error text start);
    the secret the errors quote is nowhere in the event log or the instance's files."""
    assert result.success, "every failure had a handler: the run must succeed"
    counts = [tags.get(f"exosphere/{k}") for k in ("items", "succeeded", "routed", "failed")]
    assert counts == ["8", str(8 - len(routed)), str(len(routed)), "0"]
    assert len(notes) == len(routed)
    for noted, (error_type, text) in zip(notes, sorted(routed.items()), strict=True):
        assert noted.startswith(f"hostile {error_type} {text}")
    records = instance.all_logs(result.run_id)
    assert any("attempt 1/2 failed: SystemExit" in (r.user_message or "") for r in records)
    for record in records:
        assert token not in serialize_value(record)
    home = Path(instance.root_directory)
    leaked = [p for p in home.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert leaked == []


ROUTED = {
    "SystemExit": "SystemExit: system-exit for item-1 with token ***",
    "KeyboardInterrupt": "KeyboardInterrupt: keyboard-interrupt for item-2 with token ***",
    "HostileBase": "HostileBase: custom-base for item-3 with token ***",
    "UnstorableOutputError": "UnstorableOutputError: output of item item-4~",
    "UnprintableError": "UnprintableError: <unprintable>",
}


@pytest.mark.integration
@pytest.mark.usefixtures("hostile_registered")
@pytest.mark.parametrize("uses", ["satellite/test/hostile", "satellite/test/hostile-async"])
def test_hostile_items_are_routed_through_a_real_run(tmp_path, instance, monkeypatch, uses):
    result, tags, notes, token = run_hostile(
        tmp_path, instance, monkeypatch, uses=uses, behaviours=BEHAVIOURS
    )
    assert_nothing_lost_or_leaked(instance, result, tags, notes, token, ROUTED)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.usefixtures("hostile_registered")
def test_hostile_and_stuck_items_in_separate_step_processes(tmp_path, sqlite_instance, monkeypatch):
    """Multiprocess executor: a stuck sync call (timeout 2 s) does not keep its step process
    alive, and BaseExceptions do not end it."""
    result, tags, notes, token = run_hostile(
        tmp_path,
        sqlite_instance,
        monkeypatch,
        uses="satellite/test/hostile",
        behaviours={**BEHAVIOURS, "item-6": "stuck"},
        timeout=2,
        multiprocess=True,
    )
    routed = {**ROUTED, "TimeoutError": "timed out after 2.0s"}
    assert_nothing_lost_or_leaked(sqlite_instance, result, tags, notes, token, routed)
