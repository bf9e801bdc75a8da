"""``satellite_ops.testing``: a satellite called as the runtime calls it, with no test branches."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import Field, SecretStr

from satellite_ops import (
    BatchItem,
    FatalError,
    SatelliteConfig,
    SatelliteContext,
    SatelliteRegistry,
    UnknownSatelliteError,
    satellite,
)
from satellite_ops.satellites.s3_get_files import GetFilesFromS3Config
from satellite_ops.testing import CallError, CapturedLog, call, call_batch

REGISTRY = SatelliteRegistry()  # these test satellites stay out of the process-wide registry


class GreetConfig(SatelliteConfig):
    greeting: str = Field("hello", description="What to say.")
    max_words: int = Field(3, ge=1, description="How many words at most.")
    api_key: SecretStr | None = Field(None, description="A secret, for the error test.")


class GreetInput(SatelliteConfig):
    name: str = Field(description="Who to greet.")


@satellite("satellite/test/greet", config=GreetConfig, registry=REGISTRY)
def greet(config: GreetConfig, input: Mapping[str, Any], context: SatelliteContext) -> list[dict]:
    context.log.info("greeting %s", input["name"])
    words = f"{config.greeting} {input['name']}".split()[: config.max_words]
    return [
        {
            "text": " ".join(words),
            "item": context.item_id,
            "node": context.satellite,
            "thread": threading.current_thread().name,
        }
    ]


@satellite("satellite/test/plain", config=GreetConfig, registry=REGISTRY)
def plain(config: GreetConfig, input: Mapping[str, Any]) -> dict:
    """No context parameter; returns one dict (the runtime makes it a list)."""
    return {"greeting": config.greeting, **input}


@satellite("satellite/test/knows", config=GreetConfig, registry=REGISTRY)
async def knows(
    config: GreetConfig, input: Mapping[str, Any], context: SatelliteContext
) -> list[dict]:
    await asyncio.sleep(0)
    context.log.warning("token has %d characters", len(context.secrets["TOKEN"]))
    context.metrics["calls"] = context.metrics.get("calls", 0) + 1
    return [
        {
            "token": context.secrets["TOKEN"],
            "file": context.lineage["list-files"]["file-path"],
            "cluster": context.cluster,
            "run": context.run_id,
            "attempt": context.attempt,
        }
    ]


@satellite("satellite/test/checked", config=GreetConfig, input_model=GreetInput, registry=REGISTRY)
def checked(config: GreetConfig, input: Mapping[str, Any]) -> list[dict]:
    if "name" not in input:
        raise FatalError("no name in the input")
    return [{"name": input["name"]}]


@satellite("satellite/test/shout", config=GreetConfig, batched=True, registry=REGISTRY)
async def shout(items: list[BatchItem]) -> list[list[dict] | BaseException]:
    results: list[list[dict] | BaseException] = []
    for item in items:
        item.context.log.info("shouting")
        name = item.input.get("name")
        if not name:
            results.append(FatalError(f"{item.context.item_id}: nothing to shout"))
        else:
            results.append([{"shouted": f"{item.config.greeting} {name}".upper()}])
    return results


@satellite("satellite/test/bad-shape", config=GreetConfig, registry=REGISTRY)
def bad_shape(config: GreetConfig, input: Mapping[str, Any]) -> Any:
    return input.get("value", "not a list")


def test_sync_satellite_gets_a_validated_config_and_a_context() -> None:
    outputs = call(greet, {"greeting": "good morning", "max-words": 2}, {"name": "Ada"})
    assert outputs == [
        {"text": "good morning", "item": "item-1", "node": "greet", "thread": outputs[0]["thread"]}
    ]


def test_config_keys_are_kebab_case_as_in_cluster_files_or_snake_case() -> None:
    kebab = call(greet, {"max-words": 1}, {"name": "Ada"}, item_id="x", node_id="hi")
    snake = call(greet, {"max_words": 1}, {"name": "Ada"}, item_id="x", node_id="hi")
    assert kebab == snake
    assert kebab[0]["text"] == "hello" and kebab[0]["node"] == "hi"


def test_a_config_model_instance_is_used_as_it_is() -> None:
    config = GreetConfig(greeting="hey")
    assert call(plain, config, {"name": "Bo"}) == [{"greeting": "hey", "name": "Bo"}]
    with pytest.raises(CallError, match="expected a mapping or a GreetConfig, got a GetFiles"):
        call(plain, GetFilesFromS3Config(bucket="abc"), {})


def test_a_config_error_names_the_key_and_hides_its_value() -> None:
    config = {"max-words": 0, "greting": "hi", "api-key": ["s3cr3t-value"]}
    with pytest.raises(CallError) as caught:
        call(greet, config, {"name": "Ada"})
    text = str(caught.value)
    assert text.startswith("satellite/test/greet config: ")
    assert "max-words: Input should be greater than or equal to 1" in text
    assert "greting: Extra inputs are not permitted" in text
    assert "api-key: Input should be a valid string" in text
    assert "s3cr3t" not in text  # values are never echoed: they may be secrets


def test_function_without_context_and_dict_output() -> None:
    assert call(plain, None, {"name": "Cy"}) == [{"greeting": "hello", "name": "Cy"}]


def test_a_non_object_input_arrives_as_value_as_the_runtime_passes_it() -> None:
    assert call(plain, {}, 7) == [{"greeting": "hello", "value": 7}]


def test_async_satellite_with_secrets_lineage_and_run_facts() -> None:
    metrics: dict[str, float] = {}
    log = CapturedLog()
    (out,) = call(
        knows,
        {},
        {},
        secrets={"TOKEN": "s3cr3t"},
        lineage={"list-files": {"file-path": "a/b.pdf"}},
        cluster="acme/reports",
        run_id="run-9",
        attempt=2,
        metrics=metrics,
        log=log,
    )
    assert out == {
        "token": "s3cr3t",
        "file": "a/b.pdf",
        "cluster": "acme/reports",
        "run": "run-9",
        "attempt": 2,
    }
    assert metrics == {"calls": 1}
    assert log.at("WARNING") == ["token has 6 characters"] and log.at(logging.INFO) == []


def test_log_records_are_readable_and_carry_the_item(caplog: pytest.LogCaptureFixture) -> None:
    log = CapturedLog()
    call(greet, {}, {"name": "Ada"}, item_id="doc-7", log=log)
    assert log.messages == ["greeting Ada"]
    (record,) = log.records
    assert record.levelno == logging.INFO and record.item_id == "doc-7"  # type: ignore[attr-defined]
    assert record.name == "satellite_ops.testing.greet"
    assert "greeting Ada" in caplog.messages  # propagated: pytest's caplog sees it too


def test_called_from_a_running_event_loop() -> None:
    """An async test can call it: the call then runs in a worker thread, as the runtime runs
    sync satellites, and an async satellite gets its own loop there."""

    async def in_a_test() -> tuple[list[dict], list[dict]]:
        sync = call(greet, {}, {"name": "Ada"})
        async_ = call(
            knows, {}, {}, secrets={"TOKEN": "t"}, lineage={"list-files": {"file-path": "f"}}
        )
        return sync, async_

    sync, async_ = asyncio.run(in_a_test())
    assert sync[0]["text"] == "hello Ada" and sync[0]["thread"].startswith("satellite-call")
    assert async_[0]["file"] == "f"


def test_input_is_checked_against_the_input_model() -> None:
    assert call(checked, {}, {"name": "Ada"}) == [{"name": "Ada"}]
    with pytest.raises(CallError, match="satellite/test/checked input: name: Field required"):
        call(checked, {}, {"nme": "Ada"})
    with pytest.raises(FatalError, match="no name in the input"):  # the satellite's own check
        call(checked, {}, {"nme": "Ada"}, check_input=False)


def test_a_batched_satellite_gets_a_one_item_batch_and_its_exception_is_raised() -> None:
    log = CapturedLog()
    assert call(shout, {"greeting": "hi"}, {"name": "ada"}, log=log) == [{"shouted": "HI ADA"}]
    assert log.messages == ["shouting"]
    with pytest.raises(FatalError, match="item-1: nothing to shout"):
        call(shout, {}, {})


def test_call_batch_returns_one_outcome_per_item() -> None:
    outcomes = call_batch(shout, {"greeting": "yo"}, [{"name": "a"}, {}, {"name": "c"}])
    assert outcomes[0] == [{"shouted": "YO A"}] and outcomes[2] == [{"shouted": "YO C"}]
    assert isinstance(outcomes[1], FatalError) and "item-2: nothing to shout" in str(outcomes[1])
    (failed,) = call_batch(shout, {}, [{}], item_ids=["doc-1"])
    assert "doc-1: nothing to shout" in str(failed)
    with pytest.raises(CallError, match="is not batched: test it with call"):
        call_batch(greet, {}, [{"name": "a"}])
    with pytest.raises(CallError, match="1 item_ids for 2 inputs"):
        call_batch(shout, {}, [{}, {}], item_ids=["one"])


def test_satellites_by_identifier() -> None:
    assert call("satellite/test/plain", {}, {"n": 1}, registry=REGISTRY) == [
        {"greeting": "hello", "n": 1}
    ]
    with pytest.raises(UnknownSatelliteError, match="did you mean 'satellite/test/plain'"):
        call("satellite/test/plan", {}, {}, registry=REGISTRY)


def test_a_builtin_by_identifier_from_the_default_registry(moto_server: str, s3, s3_bucket) -> None:
    s3.put_object(Bucket=s3_bucket, Key="in/a.pdf", Body=b"x")
    config = {"bucket": s3_bucket, "endpoint-url": moto_server}
    (found,) = call("satellite/exospherehost/get-files-from-s3", config)
    assert found["uri"] == f"s3://{s3_bucket}/in/a.pdf"


def test_what_is_not_a_satellite_is_refused() -> None:
    def helper(config, input):
        return []

    with pytest.raises(CallError, match="helper is not a @satellite function"):
        call(helper, {}, {})


def test_outputs_the_runtime_would_refuse_are_refused() -> None:
    with pytest.raises(CallError, match="must return a list of objects \\(dicts\\), returned str"):
        call(bad_shape, {}, {})
    with pytest.raises(CallError, match="returned list"):
        call(bad_shape, {}, {"value": [{"ok": 1}, 2]})
    with pytest.raises(CallError, match="cannot be stored \\(pickled\\): TypeError"):
        call(bad_shape, {}, {"value": [{"lock": threading.Lock()}]})
    assert call(bad_shape, {}, {"value": None}) == []
