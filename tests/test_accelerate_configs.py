"""runs/accelerate/: each config launches the course's training as its first line says, on every
model a GPU profile trains (read as `accelerate launch` reads it; nothing is started)."""

import os
import shlex
from pathlib import Path
from unittest import mock

import pytest
import torch

from ftcourse.profiles import PROFILES
from ftcourse.runfile import RunConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "runs" / "accelerate").glob("*.yaml"))
GPU_MODELS = sorted({p.architecture for p in PROFILES.values() if p.needs_cuda})


def launch(path: Path):
    """The command on the config's first line as `accelerate launch` takes it: args, environment."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    command = shlex.split(path.read_text().splitlines()[0].removeprefix("#"))
    assert command[:2] == ["accelerate", "launch"], command
    args = launch_command_parser().parse_args(command[2:])
    assert Path(args.config_file) == path.relative_to(ROOT), "the command names its own file"
    args, _, _ = _validate_launch_command(args)
    return args, prepare_multi_gpu_env(args)


def test_there_is_a_ddp_and_an_fsdp_config():
    assert [p.name for p in CONFIGS] == ["ddp.yaml", "fsdp.yaml"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_each_config_runs_the_course_module_on_a_run_file_on_several_gpus(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the command's paths are the repository's
    args, env = launch(path)
    assert args.module and args.training_script == "ftcourse.train"
    run = RunConfig.from_yaml(ROOT / args.training_script_args[0])
    assert args.num_processes == 2 and args.num_machines == 1
    if path.name == "ddp.yaml":  # every GPU holds the model: any method; the profile sets dtypes
        assert args.multi_gpu and not args.use_fsdp
        assert env["ACCELERATE_MIXED_PRECISION"] == "no"
    else:  # FSDP shards 16-bit weights: a LoRA or full run, not QLoRA's 4-bit ones
        assert args.use_fsdp and run.method in ("lora", "full")
        assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"


@pytest.mark.parametrize("architecture", GPU_MODELS)
def test_fsdp_wraps_every_decoder_layer_of_each_gpu_profiles_model(architecture, monkeypatch):
    """A layer class named in the config (LlamaDecoderLayer) is missing from a Qwen model."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
    from transformers import AutoModelForCausalLM

    from ftcourse.architectures import load_architecture

    monkeypatch.chdir(ROOT)
    _, env = launch(ROOT / "runs" / "accelerate" / "fsdp.yaml")
    with mock.patch.dict(os.environ, env):
        plugin = FullyShardedDataParallelPlugin()
    with torch.device("meta"):  # the model's classes and layers, without its memory
        model = AutoModelForCausalLM.from_config(load_architecture(architecture))
    policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
    wrapped = [m for m in model.modules() if policy(m)]
    layer = type(model.model.layers[0])
    assert len(wrapped) == model.config.num_hidden_layers and {type(m) for m in wrapped} == {layer}
