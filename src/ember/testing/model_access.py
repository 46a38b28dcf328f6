"""The :class:`~ember.models.protocol.ModelAccess` and
:class:`~ember.models.protocol.HostLauncher` contracts as pytest mixins.

An implementation's test module subclasses :class:`ModelAccessContract` and provides an
``access`` fixture, or :class:`HostLauncherContract` and provides ``launcher`` and
``model_record`` fixtures::

    class TestLocalModels(ModelAccessContract):
        @pytest.fixture
        async def access(self, ...): ...       # its catalog has MODEL registered, warm

    class TestLocalLauncher(HostLauncherContract):
        @pytest.fixture
        def launcher(self): ...

        @pytest.fixture
        def model_record(self, ...): ...       # a ModelRecord whose file is there

Every call is real: the model (by default the bundled one, which loads in about half a
second) is loaded and asked :data:`QUESTION`, whose answer must contain :data:`ANSWER`.
"""

from __future__ import annotations

import functools
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from ember.chat import GenerationOptions
from ember.errors import ModelDigestMismatch, ModelNotRegistered, ProviderUnavailable
from ember.models.bundle import BUNDLED_MODEL
from ember.models.protocol import HostHandle, HostLauncher, ModelAccess
from ember.models.records import LoadedModel, ModelRecord
from ember.testing._waiting import eventually

__all__ = ["ANSWER", "QUESTION", "HostLauncherContract", "ModelAccessContract"]

QUESTION = "Question: What is the capital of France?\nAnswer:"
ANSWER = "Paris"
OPTIONS = GenerationOptions(max_tokens=6, temperature=0, seed=1)


async def assert_answers(host: HostHandle) -> None:
    """``host`` has a model loaded that answers :data:`QUESTION` right."""
    answer = await host.complete(QUESTION, OPTIONS)
    assert ANSWER in answer.text, answer.text
    assert answer.usage.completion_tokens > 0


async def _loaded(access: ModelAccess, name: str) -> LoadedModel | None:
    return next((m for m in await access.loaded() if m.name == name), None)


class ModelAccessContract:
    """Tests every :class:`~ember.models.protocol.ModelAccess` must pass.

    Needs an ``access`` fixture over a catalog where ``model`` is registered ``warm``, its
    file present, and no other warm model is, and where ``cold_model`` is the same file
    registered not warm; the tests load and unload them.

    Class attributes:

    - ``model`` (default: the bundled model): the model the tests load;
    - ``cold_model`` (default ``gemma-cold``): a model that is not warm, for the keep-alive
      tests (a warm model stays loaded whatever a call's keep-alive says);
    - ``unloads_expired_within_s``: how soon an idle model past its keep-alive is unloaded
      without anyone asking, or ``None`` (the default) where nothing sweeps expired models:
      that test is skipped;
    - ``settle_s`` (default 5): how long the keep-alive of an ``open`` may take to reach the
      registry (0: it has when ``open`` returns).
    """

    model: ClassVar[str] = BUNDLED_MODEL
    cold_model: ClassVar[str] = "gemma-cold"
    unloads_expired_within_s: ClassVar[float | None] = None
    settle_s: ClassVar[float] = 5.0

    async def test_records_list_every_registered_model_by_name(self, access: ModelAccess) -> None:
        records = await access.records()
        names = [record.name for record in records]
        assert names == sorted(names) and len(set(names)) == len(names)
        (record,) = [r for r in records if r.name == self.model]
        assert isinstance(record, ModelRecord) and record.warm
        assert record.digest.startswith("sha256:") and record.size_bytes > 0

    async def test_open_an_unknown_model_raises_model_not_registered(
        self, access: ModelAccess
    ) -> None:
        with pytest.raises(ModelNotRegistered):
            await access.open("no-such-model", None)
        assert await _loaded(access, "no-such-model") is None

    async def test_open_loads_the_model_and_loaded_lists_it(self, access: ModelAccess) -> None:
        record, host = await access.open(self.model, None)
        (registered,) = [r for r in await access.records() if r.name == self.model]
        assert (record.name, record.digest, record.path) == (
            registered.name,
            registered.digest,
            registered.path,
        )
        await assert_answers(host)
        loaded = await _loaded(access, self.model)
        assert loaded is not None
        assert (loaded.digest, loaded.size_bytes) == (record.digest, record.size_bytes)
        assert loaded.replicas >= 1 and loaded.node_id
        assert loaded.queue_depth == 0, "no call is running"
        assert loaded.loaded_at <= loaded.last_used_at <= datetime.now(UTC) + timedelta(seconds=5)
        again, other = await access.open(self.model, None)
        assert again.digest == record.digest
        await assert_answers(other)

    async def test_unload_closes_its_hosts_and_loaded_stops_listing_it(
        self, access: ModelAccess
    ) -> None:
        _, host = await access.open(self.model, None)
        assert await access.unload(self.model) is True
        assert await _loaded(access, self.model) is None
        with pytest.raises(ProviderUnavailable):
            await host.complete(QUESTION, OPTIONS)
        assert await access.unload(self.model) is False, "nothing left to unload"
        assert await access.unload("no-such-model") is False
        _, again = await access.open(self.model, None)
        await assert_answers(again)
        assert await _loaded(access, self.model) is not None

    async def test_ready_says_whether_every_warm_model_is_loaded(self, access: ModelAccess) -> None:
        await access.open(self.model, None)
        ready, detail = await access.ready()
        assert ready is True and isinstance(detail, str) and detail
        await access.unload(self.model)
        ready, detail = await access.ready()
        assert ready is False and self.model in detail
        await access.open(self.model, None)
        assert (await access.ready())[0] is True

    async def test_keep_alive_sets_the_expiry_loaded_reports(self, access: ModelAccess) -> None:
        async def expires_as(keep_alive_s: float) -> bool:
            loaded = await _loaded(access, self.cold_model)
            if loaded is None or keep_alive_s < 0:
                return loaded is not None and loaded.expires_at is None
            if loaded.expires_at is None:
                return False
            left = (loaded.expires_at - datetime.now(UTC)).total_seconds()
            return keep_alive_s - 60 < left <= keep_alive_s

        try:
            for keep_alive_s in (300, -1, 120):
                await access.open(self.cold_model, keep_alive_s)
                what = f"loaded() shows the keep-alive {keep_alive_s} s"
                await eventually(functools.partial(expires_as, keep_alive_s), what, self.settle_s)
        finally:
            await access.unload(self.cold_model)

    async def test_a_warm_model_ignores_a_calls_keep_alive(self, access: ModelAccess) -> None:
        async def kept() -> bool:
            loaded = await _loaded(access, self.model)
            return loaded is not None and loaded.expires_at is None

        for keep_alive_s in (0, 120):
            await access.open(self.model, keep_alive_s)
            what = f"the warm model is kept after a keep-alive of {keep_alive_s} s"
            await eventually(kept, what, self.settle_s)

    async def test_forget_drops_a_cached_host_not_the_model(self, access: ModelAccess) -> None:
        await access.open(self.model, None)
        access.forget(self.model)
        access.forget("no-such-model")
        assert await _loaded(access, self.model) is not None
        _, host = await access.open(self.model, None)
        await assert_answers(host)

    async def test_an_idle_model_past_its_keep_alive_is_unloaded(self, access: ModelAccess) -> None:
        within = self.unloads_expired_within_s
        if within is None:
            pytest.skip("this implementation unloads expired models only when asked")
        _, host = await access.open(self.cold_model, None)
        await assert_answers(host)
        await access.open(self.cold_model, 0)

        async def gone() -> bool:
            return await _loaded(access, self.cold_model) is None

        started = time.monotonic()
        await eventually(gone, "the expired model is unloaded", within)
        assert time.monotonic() - started <= within
        access.forget(self.cold_model)
        _, again = await access.open(self.cold_model, None)
        await assert_answers(again)
        await access.unload(self.cold_model)


class HostLauncherContract:
    """Tests every :class:`~ember.models.protocol.HostLauncher` must pass.

    Needs a ``launcher`` fixture and a ``model_record`` fixture: the
    :class:`~ember.models.records.ModelRecord` of a model file that is there (on every node
    the launcher may pick) and answers :data:`QUESTION` (the bundled model does).
    """

    async def test_nodes_have_room_for_the_model(
        self, launcher: HostLauncher[Any], model_record: ModelRecord
    ) -> None:
        nodes = await launcher.nodes()
        assert nodes, "no node may host models"
        assert len({node.node_id for node in nodes}) == len(nodes)
        for node in nodes:
            assert node.capacity_bytes > model_record.size_bytes
            assert node.gpus >= 0 and (node.gpu or node.gpus == 0)

    async def test_each_start_is_a_loaded_host_of_its_own(
        self, launcher: HostLauncher[Any], model_record: ModelRecord
    ) -> None:
        node = (await launcher.nodes())[0]
        first = await launcher.start(model_record, node)
        open_hosts = [first]
        try:
            second = await launcher.start(model_record, node)
            open_hosts.append(second)
            await assert_answers(first)
            assert await first.busy() == 0
            open_hosts.remove(first)
            await first.close()
            with pytest.raises(ProviderUnavailable):
                await first.complete(QUESTION, OPTIONS)
            await assert_answers(second)
        finally:
            for host in open_hosts:
                await host.close()

    async def test_start_refuses_a_file_that_is_not_the_pinned_one(
        self, launcher: HostLauncher[Any], model_record: ModelRecord
    ) -> None:
        node = (await launcher.nodes())[0]
        tampered = replace(model_record, digest="sha256:" + "0" * 64)
        with pytest.raises(ModelDigestMismatch):
            await launcher.start(tampered, node)

    async def test_start_of_a_missing_file_raises_provider_unavailable(
        self, launcher: HostLauncher[Any], model_record: ModelRecord
    ) -> None:
        node = (await launcher.nodes())[0]
        missing = replace(model_record, path=model_record.path + ".gone")
        with pytest.raises(ProviderUnavailable):
            await launcher.start(missing, node)
