"""Where Minari datasets live, writing them atomically, and opening them with clear errors.

Root folder: the `data_dir` argument, else the `MINARI_DATASETS_PATH` environment variable, else
Minari's default `~/.minari/datasets`. A dataset `ns/name-v0` lives in `<root>/ns/name-v0/`,
Minari's files in its `data/` subfolder (`metadata.json`, `main_data.hdf5`).

Writing is atomic: the dataset is built in a hidden temporary folder inside the root (Minari
skips hidden folders when listing) and renamed into place only once every episode is written,
so a crash or Ctrl-C never leaves a half-written dataset under the final id.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import uuid
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from world_models.atomic import replace_dir

if TYPE_CHECKING:
    from gymnasium.envs.registration import EnvSpec
    from minari import MinariDataset
    from minari.data_collector import EpisodeBuffer

ENV_VAR = "MINARI_DATASETS_PATH"
DEFAULT_ROOT = Path.home() / ".minari" / "datasets"
# Extra metadata key naming the env whose spaces a dataset uses (ingested video has no EnvSpec).
ENV_ID_KEY = "dreamgym_env_id"
TMP_PREFIX = ".dreamgym-tmp-"  # + host-pid-uuid: a write in progress (removed if its process died)


class CorruptDatasetError(ValueError):
    """A dataset folder exists but its metadata or HDF5 file cannot be read."""


def datasets_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The datasets root folder: `data_dir`, else `$MINARI_DATASETS_PATH`, else Minari's default."""
    if data_dir is None:
        data_dir = os.environ.get(ENV_VAR) or DEFAULT_ROOT
    # Absolute, because Minari joins a relative root onto paths it has already rooted.
    return Path(data_dir).expanduser().absolute()


def check_dataset_id(dataset_id: str) -> tuple[str | None, str, int]:
    """(namespace, name, version) of a Minari id; a clear error for a malformed one."""
    from minari.dataset.minari_dataset import DATASET_ID_RE

    match = DATASET_ID_RE.fullmatch(dataset_id)
    if not match or match.group("version") is None:
        raise ValueError(
            f"malformed dataset id {dataset_id!r}: use 'name-v0' or 'namespace/name-v0' with a "
            "namespace of 2+ characters "
            "(letters, digits, '-' and '_', ending in -v<version>)"
        )
    namespace, name, version = match.group("namespace", "dataset", "version")
    return namespace or None, name, int(version)


def dataset_dir(dataset_id: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder of dataset `dataset_id` under the datasets root (it may not exist)."""
    check_dataset_id(dataset_id)
    return datasets_root(data_dir) / dataset_id


def dataset_exists(dataset_id: str, data_dir: str | os.PathLike | None = None) -> bool:
    """Whether a dataset folder exists under the final id (complete or not)."""
    return dataset_dir(dataset_id, data_dir).exists()


@contextlib.contextmanager
def minari_root(root: str | os.PathLike) -> Iterator[None]:
    """Point Minari's global `MINARI_DATASETS_PATH` at `root` for the duration of the block."""
    old = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = str(root)
    try:
        yield
    finally:
        if old is None:
            del os.environ[ENV_VAR]
        else:
            os.environ[ENV_VAR] = old


def write_dataset(
    dataset_id: str,
    episodes: Iterable[EpisodeBuffer],
    *,
    observation_space: gym.Space,
    action_space: gym.Space,
    env_spec: EnvSpec | None = None,
    env_id: str | None = None,
    data_dir: str | os.PathLike | None = None,
    force: bool = False,
    algorithm_name: str = "dreamgym",
    description: str = "",
) -> Path:
    """Write `episodes` (consumed one at a time, so memory stays bounded) as a Minari dataset.

    Images are stored raw (`jpeg_encoding=False`: Minari's default JPEG is lossy) in HDF5.
    `env_id` is stored in the metadata under `dreamgym_env_id` (defaults to `env_spec.id`).
    Refuses to replace an existing dataset unless `force`. Returns the dataset folder.
    """
    import minari
    from minari.namespace import create_namespace, list_local_namespaces

    namespace = check_dataset_id(dataset_id)[0]
    root = datasets_root(data_dir)
    final = root / dataset_id
    _refuse_overwrite(final, dataset_id, force)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp_dirs(root)
    tmp_root = root / f"{TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        with minari_root(tmp_root), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module="minari")
            dataset = minari.create_dataset_from_buffers(
                dataset_id,
                [],
                env=env_spec,
                observation_space=observation_space,
                action_space=action_space,
                algorithm_name=algorithm_name,
                author="dreamgym",
                author_email="dreamgym@users.noreply.github.com",
                code_permalink="https://github.com/dreamgym/dreamgym",
                description=description or f"dreamgym dataset {dataset_id}",
                data_format="hdf5",
                jpeg_encoding=False,
            )
            storage = dataset.storage
            for episode in episodes:
                storage.update_episodes([episode])
            storage.update_metadata({ENV_ID_KEY: env_id or (env_spec.id if env_spec else "")})
        if namespace is not None:
            with minari_root(root):
                if namespace not in list_local_namespaces():
                    create_namespace(namespace)
        _refuse_overwrite(final, dataset_id, force)
        replace_dir(tmp_root / dataset_id, final)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return final


def remove_stale_tmp_dirs(root: Path) -> list[Path]:
    """Delete the temporary folders of writes killed outright (SIGKILL, out of memory): those
    of this host whose process is gone. Returns what was removed."""
    removed = []
    host = socket.gethostname()
    for tmp in root.glob(f"{TMP_PREFIX}{host}-*"):
        pid = tmp.name[len(TMP_PREFIX) + len(host) + 1 :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _refuse_overwrite(final: Path, dataset_id: str, force: bool) -> None:
    if final.exists() and not force:
        raise FileExistsError(
            f"dataset {dataset_id!r} already exists at {final}; pass --force (force=True) to "
            "replace it or choose another --dataset-id"
        )


def _collect_hint(dataset_id: str, root: Path) -> str:
    return (
        f"create it with `dreamgym collect --env ENV_ID --policy expert --episodes N "
        f"--dataset-id {dataset_id} --data-dir {root}` (or `dreamgym ingest-video`)"
    )


def load_dataset(dataset_id: str, data_dir: str | os.PathLike | None = None) -> MinariDataset:
    """Open a local Minari dataset; clear errors for a missing or corrupt one (no h5py traces)."""
    import h5py
    import minari

    root = datasets_root(data_dir)
    folder = dataset_dir(dataset_id, data_dir)
    if not folder.exists():
        raise FileNotFoundError(
            f"no dataset {dataset_id!r} in {root} (searched {folder}; the root comes from "
            f"--data-dir, else ${ENV_VAR}, else {DEFAULT_ROOT}); {_collect_hint(dataset_id, root)}"
        )
    data = folder / "data"
    fix = f"delete {folder} and re-create it ({_collect_hint(dataset_id, root)} --force)"
    metadata = read_metadata(folder)
    hdf5 = data / "main_data.hdf5"
    if metadata.get("data_format", "hdf5") != "hdf5":
        raise CorruptDatasetError(f"dataset {dataset_id!r} is not stored as HDF5; {fix}")
    try:
        with h5py.File(hdf5, "r") as f:
            found = sum(1 for k in f if k.startswith("episode_"))
    except (OSError, KeyError, RuntimeError) as err:
        raise CorruptDatasetError(
            f"dataset {dataset_id!r}: cannot read {hdf5} ({err}); {fix}"
        ) from None
    expected = metadata.get("total_episodes")
    if found != expected:
        raise CorruptDatasetError(
            f"dataset {dataset_id!r}: metadata lists {expected} episodes but {hdf5} holds "
            f"{found}; {fix}"
        )
    try:
        return minari.MinariDataset(data)
    except Exception as err:  # Minari raises assorted errors for inconsistent files
        raise CorruptDatasetError(
            f"dataset {dataset_id!r} cannot be opened ({err}); {fix}"
        ) from None


def read_metadata(folder: Path) -> dict[str, Any]:
    """The raw `data/metadata.json` of a dataset folder; CorruptDatasetError if unreadable."""
    path = folder / "data" / "metadata.json"
    try:
        with open(path) as f:
            metadata = json.load(f)
    except FileNotFoundError:
        raise CorruptDatasetError(
            f"dataset folder {folder} has no {path.name} (incomplete or corrupt); delete it "
            "and re-create the dataset"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptDatasetError(
            f"{path} is not valid JSON ({err}); delete {folder} and re-create the dataset"
        ) from None
    if not isinstance(metadata, dict) or "total_episodes" not in metadata:
        raise CorruptDatasetError(f"{path} lacks 'total_episodes'; delete {folder} and re-create")
    return metadata


def dataset_env_id(dataset: MinariDataset) -> str | None:
    """The env id whose spaces a dataset uses: dreamgym's metadata key, else its EnvSpec id."""
    env_id = dataset.storage.metadata.get(ENV_ID_KEY)
    if env_id:
        return env_id
    spec = dataset.env_spec
    return spec.id if spec is not None else None
