"""The library speaks Python (issue #18): data, train and evaluation name arguments, the commands name flags."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from temu.cli.args import flag_message
from temu.data import DataOptions, prepare_training_data
from temu.errors import DataError
from temu.train.config import TrainConfig
from temu.train.trainer import steps_per_epoch

PACKAGE = Path(__file__).resolve().parent.parent / "temu"
LIBRARY = ("data", "train", "evaluation")
FLAG = re.compile(r"(?<![\w-])--[a-z]")


def message_strings(path: Path) -> list[tuple[int, str]]:
    """String pieces (f-string parts too) of what a module raises, the errors it builds and what it logs."""
    found: list[tuple[int, str]] = []

    def strings(node: ast.AST) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                found.append((sub.lineno, sub.value))

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            strings(node.exc)
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name.endswith(("Error", "Exception")) or name in ("log", "say", "_log", "unusable"):
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    strings(arg)
    return found


@pytest.mark.parametrize("package", LIBRARY)
def test_library_messages_name_arguments_not_flags(package):
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}"
        for path in sorted((PACKAGE / package).glob("*.py"))
        for line, text in message_strings(path)
        if FLAG.search(text)
    ]
    assert wrong == [], wrong


def test_a_python_caller_is_told_the_argument_name(tmp_path):
    with pytest.raises(DataError, match=r"one batch of 64; lower batch_size"):
        steps_per_epoch(40, 64)
    with pytest.raises(DataError, match=r"^batch_size=7 must be divisible"):
        steps_per_epoch(40, 7, world_size=2)
    csv_path = tmp_path / "x.csv"
    csv_path.write_text("image,mos\na.png,1\n")
    options = DataOptions(csv=csv_path, image_root=tmp_path, split_column="official_split")
    with pytest.raises(DataError, match="got split_column, val_fraction") as info:
        prepare_training_data(options, val_fraction=0.2, log=print)
    assert "--" not in str(info.value)
    with pytest.raises(DataError, match="lower_better is for CSVs without a format"):
        prepare_training_data(
            DataOptions(csv=csv_path, image_root=tmp_path, format="koniq10k", lower_better=True), log=print
        )
    assert not hasattr(DataOptions, "from_namespace")  # the CLI builds DataOptions from keywords


def test_flag_message_rewrites_fields_as_flags():
    flags = {"val_fraction": "--val-fraction", "batch_size": "--batch-size", "skip_bad=True": "--skip-bad",
             "group=False": "--no-group", "csv": "--train", "fraction": "--split-fraction", "val_part": "--val-part"}  # fmt: skip
    assert flag_message("batch_size=64 over 2; lower batch_size", flags) == "--batch-size 64 over 2; lower --batch-size"
    assert flag_message("pass skip_bad=True or group=False", flags) == "pass --skip-bad or --no-group"
    assert flag_message("pass val_part='test'", flags) == "pass --val-part test"
    assert flag_message("csv=a.csv is the csv", flags) == "--train a.csv is the csv"  # a plain word stays
    assert flag_message("raise fraction", flags) == "raise fraction"
    assert flag_message("raise fraction", flags, bare=("fraction",)) == "raise --split-fraction"
    # a field name inside a path or another name is left alone
    path = "/tmp/test_val_fraction/batch_size.csv: val_fractions"
    assert flag_message(path, flags) == path


def test_model_config_errors_reach_temu_finetune_with_its_flags():
    from temu.cli.finetune import FLAGS
    from temu.errors import ConfigError
    from temu.model.config import TeMuConfig

    for fields, flag in (({"layers": [0]}, "--layers [0]:"), ({"variant": "s"}, "--variant s:")):
        with pytest.raises(ConfigError) as info:
            TeMuConfig(**fields)
        assert flag_message(str(info.value), FLAGS).startswith(flag), str(info.value)


def test_every_train_config_field_has_its_flag():
    from temu.cli.finetune import FLAGS, TRAIN_FLAGS, build_parser

    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"ldg_reference_size"}
    assert set(TRAIN_FLAGS) == fields
    parser_flags = {option for action in build_parser()._actions for option in action.option_strings}
    for flag in {*TRAIN_FLAGS.values(), *(f for f in FLAGS.values() if f.startswith("--") and " " not in f)}:
        assert flag in parser_flags, flag
    data_fields = {f.name for f in dataclasses.fields(DataOptions)}
    assert {name.split("=")[0] for name in FLAGS} >= data_fields


def test_eval_flags_exist():
    import argparse

    from temu.cli.eval import FLAGS, add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    options = {o for action in sub.choices["eval"]._actions for o in action.option_strings}
    for flag in FLAGS.values():
        if flag.startswith("--"):
            assert flag.split()[0] in options, flag
