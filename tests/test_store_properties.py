"""Property test: any sequence of puts and stage moves keeps a store equal to a tiny model of
the KMS rules, and keeps its invariants (one ACSCurrent, ACSPrevious follows it, <= 10 versions).

Runs against the EmbeddedStore and, with fewer examples, against KMS through the real SDK.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from secretclient import (
    CURRENT,
    PENDING,
    PREVIOUS,
    EmbeddedStore,
    InvalidParameter,
    LimitExceeded,
    SecretNotFound,
    VersionConflict,
)
from secretclient.stores.base import MAX_VERSIONS

VERSION_IDS = [f"v{i}" for i in range(14)]
DATA = ["a", "b", "c"]
STAGES = [CURRENT, PENDING, PREVIOUS, "Custom"]


class Model:
    """The store contract in a few lines: the oracle the store is compared with."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {"v0": "a"}
        self.order = ["v0"]
        self.stages: dict[str, str] = {CURRENT: "v0"}

    def attach(self, stage: str, vid: str) -> None:
        old = self.stages.get(stage)
        if old == vid:
            return
        if stage == CURRENT and old is not None:
            self.stages[PREVIOUS] = old
        self.stages[stage] = vid

    def labelled(self, vid: str) -> bool:
        return vid in self.stages.values()

    def put(self, vid: str, data: str, stages: list[str] | None) -> type[Exception] | None:
        if vid in self.data:
            return None if self.data[vid] == data else VersionConflict
        saved = (dict(self.data), list(self.order), dict(self.stages))
        self.data[vid] = data
        self.order.append(vid)
        for s in dict.fromkeys(stages if stages is not None else [CURRENT]):
            self.attach(s, vid)
        while len(self.order) > MAX_VERSIONS:
            victims = [v for v in self.order if not self.labelled(v)]
            if not victims:
                self.data, self.order, self.stages = saved
                return LimitExceeded
            self.order.remove(victims[0])
            del self.data[victims[0]]
        return None

    def update(self, stage: str, move_to: str | None, remove_from: str | None) -> type[Exception] | None:
        if move_to is None and remove_from is None:
            return InvalidParameter
        if stage in (CURRENT, PREVIOUS) and move_to is None:
            return InvalidParameter
        for v in (move_to, remove_from):
            if v is not None and v not in self.data:
                return SecretNotFound
        holder = self.stages.get(stage)
        if move_to is not None and holder == move_to:
            return None
        if remove_from is not None and holder != remove_from:
            return VersionConflict
        if move_to is not None:
            self.attach(stage, move_to)
        else:
            del self.stages[stage]
        return None


class StoreMachine(RuleBasedStateMachine):
    make_store: staticmethod  # set by the subclasses below

    @initialize()
    def start(self) -> None:
        self.store = self.make_store()
        self.name = "prop"
        self.store.create_secret(self.name, "a", version_id="v0")
        self.model = Model()

    def teardown(self) -> None:
        if hasattr(self, "store"):
            # Stores schedule a deletion unless forced; the name is reused next run.
            self.store.delete_secret(self.name, force=True)
            self.store.close()

    def _expect(self, expected: type[Exception] | None, call) -> None:
        if expected is None:
            call()
        else:
            with pytest.raises(expected):
                call()

    @rule(vid=st.sampled_from(VERSION_IDS), data=st.sampled_from(DATA),
          stages=st.one_of(st.none(), st.lists(st.sampled_from(STAGES), max_size=2)))
    def put(self, vid: str, data: str, stages: list[str] | None) -> None:
        expected = self.model.put(vid, data, stages)
        self._expect(expected, lambda: self.store.put_secret(self.name, vid, data, stages=stages))

    @rule(stage=st.sampled_from(STAGES), move_to=st.one_of(st.none(), st.sampled_from(VERSION_IDS)),
          remove_from=st.one_of(st.none(), st.sampled_from(VERSION_IDS)))
    def update_stage(self, stage: str, move_to: str | None, remove_from: str | None) -> None:
        expected = self.model.update(stage, move_to, remove_from)
        self._expect(expected, lambda: self.store.update_stage(
            self.name, stage, move_to=move_to, remove_from=remove_from))

    @invariant()
    def matches_model(self) -> None:
        if not hasattr(self, "store"):
            return
        versions = self.store.list_versions(self.name, include_deprecated=True)
        assert sorted(v.version_id for v in versions) == sorted(self.model.order)
        for v in versions:
            assert v.stages == frozenset(s for s, holder in self.model.stages.items() if holder == v.version_id)
        assert sum(CURRENT in v.stages for v in versions) == 1
        assert len(versions) <= MAX_VERSIONS
        current = self.store.get_secret(self.name)
        assert current.version_id == self.model.stages[CURRENT]
        assert current.data == self.model.data[current.version_id]


class EmbeddedMachine(StoreMachine):
    make_store = staticmethod(EmbeddedStore)


TestEmbeddedStoreProperties = EmbeddedMachine.TestCase
TestEmbeddedStoreProperties.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def kms_for_properties():
    from secretclient.testing import KmsEmulator

    with KmsEmulator() as emu:
        yield emu


def test_kms_store_properties(kms_for_properties):
    """The same machine through the real SDK and the emulator (fewer examples: each call is HTTP)."""

    class KmsMachine(StoreMachine):
        make_store = staticmethod(kms_for_properties.store)

    run = KmsMachine.TestCase
    run.settings = settings(max_examples=12, stateful_step_count=15, deadline=None,
                            suppress_health_check=list(HealthCheck))
    run("runTest").runTest()
