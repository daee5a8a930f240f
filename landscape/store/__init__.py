"""The store: everything the toolkit writes to disk and reads back.

Owns the HDF5 files (:mod:`.hdf5`: opening, safe edits, the one attribute encoding; :mod:`.series`:
append-only series; :mod:`.provenance`), the checkpoint format and files
(:mod:`.checkpoint`, :mod:`.checkpoint_files`; your own weights as a checkpoint:
:mod:`.weights`), the exact RNG states checkpoints carry (:mod:`.rng`), the layout of a run
directory (:mod:`.layout`), the guard every output goes through (:mod:`.outputs`; the stamp
that tells landscape's figures from other images: :mod:`.figure_stamp`) and ``landscape
info`` (:mod:`.info`). Layouts: ``docs/hdf5-schema.md``.

May import: :mod:`landscape._files`, :mod:`landscape._imports` (your model factory) and
:mod:`landscape.models` (a checkpoint rebuilds its model). Nothing numerical, no rendering,
no CLI.
"""

from landscape.store.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_FORMAT_VERSION,
    Checkpoint,
    TrainingRecord,
    build_model,
    checkpoint_step,
    load_checkpoint,
    save_checkpoint,
)
from landscape.store.checkpoint_files import (
    CheckpointError,
    PickledObjectsError,
    as_step,
    atomic_torch_save,
    checkpoint_path,
    checkpoint_sha256,
    list_checkpoints,
    safe_torch_load,
    step_of_name,
)
from landscape.store.hdf5 import (
    as_numpy,
    attr_str,
    check_hdf5,
    check_schema,
    describe_datasets,
    dumps,
    edit,
    encode_attr,
    group_of,
    json_default,
    open_run,
    read_attr,
    read_attrs,
    read_json_attr,
    read_json_object,
    set_attrs,
    write_array,
    write_attrs,
    write_json_attr,
)
from landscape.store.info import describe, describe_checkpoint
from landscape.store.layout import (
    CHECKPOINTS,
    FIGURES,
    HESSIAN_FILE,
    PROBES_FILE,
    RUN_FILE,
    SLICES,
    VARIANTS,
    Variant,
    checkpoint_dir,
)
from landscape.store.outputs import (
    KIND_ATTR,
    Kind,
    check_output,
    kind_of,
    remove_empty_run_folders,
    remove_run_outputs,
    remove_run_temporaries,
)
from landscape.store.provenance import (
    PROVENANCE_KEYS,
    SCHEMA_VERSION,
    package_version,
    provenance,
    read_provenance,
    write_provenance,
)
from landscape.store.rng import capture_rng, restore_rng
from landscape.store.series import (
    SeriesLog,
    append_rows,
    append_series,
    read_series,
    series_columns,
    truncate_series,
)
from landscape.store.weights import load_state_dict_file, weights_checkpoint

__all__ = [
    # HDF5 files, attributes and provenance
    "PROVENANCE_KEYS",
    "SCHEMA_VERSION",
    "as_numpy",
    "attr_str",
    "check_hdf5",
    "check_schema",
    "describe_datasets",
    "dumps",
    "edit",
    "encode_attr",
    "group_of",
    "json_default",
    "open_run",
    "package_version",
    "provenance",
    "read_attr",
    "read_attrs",
    "read_json_attr",
    "read_json_object",
    "read_provenance",
    "set_attrs",
    "write_array",
    "write_attrs",
    "write_json_attr",
    "write_provenance",
    # series
    "SeriesLog",
    "append_rows",
    "append_series",
    "read_series",
    "series_columns",
    "truncate_series",
    # checkpoints
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "PickledObjectsError",
    "TrainingRecord",
    "as_step",
    "atomic_torch_save",
    "build_model",
    "capture_rng",
    "checkpoint_path",
    "checkpoint_sha256",
    "list_checkpoints",
    "checkpoint_step",
    "load_checkpoint",
    "load_state_dict_file",
    "restore_rng",
    "safe_torch_load",
    "save_checkpoint",
    "step_of_name",
    "weights_checkpoint",
    # the output guard
    "KIND_ATTR",
    "Kind",
    "check_output",
    "kind_of",
    "remove_empty_run_folders",
    "remove_run_outputs",
    "remove_run_temporaries",
    # run directory
    "CHECKPOINTS",
    "FIGURES",
    "PROBES_FILE",
    "HESSIAN_FILE",
    "RUN_FILE",
    "SLICES",
    "VARIANTS",
    "Variant",
    "checkpoint_dir",
    "describe",
    "describe_checkpoint",
]
