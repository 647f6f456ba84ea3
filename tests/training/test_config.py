from pathlib import Path

import pytest
import tomllib

from fastnst.training.config import (
    RUN_CONFIG,
    TrainConfig,
    config_from_dict,
    config_to_toml,
    load_config,
    load_run_config,
    parse_overrides,
)
from fastnst.utils.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_inherit_and_relative_paths(tmp_path: Path) -> None:
    write(tmp_path / "base.toml", 'data_dir = "photos"\nsteps = 7\n')
    (tmp_path / "styles").mkdir()
    cfg = write(tmp_path / "styles" / "wave.toml", 'inherit = "../base.toml"\nstyle_image = "wave.jpg"\n')
    config = load_config(cfg)
    assert config.steps == 7
    assert config.data_dir == str((tmp_path / "photos").resolve())
    assert config.style_image == str((tmp_path / "styles" / "wave.jpg").resolve())
    assert config.style_name == "wave"


def test_a_chain_of_three_nearer_files_win(tmp_path: Path) -> None:
    write(tmp_path / "base.toml", 'data_dir = "photos"\nsteps = 7\nbatch_size = 2\n')
    (tmp_path / "styles").mkdir()
    write(tmp_path / "styles" / "wave.toml", 'inherit = "../base.toml"\nstyle_image = "wave.jpg"\nsteps = 9\n')
    (tmp_path / "video").mkdir()
    cfg = write(tmp_path / "video" / "wave_video.toml", 'inherit = "../styles/wave.toml"\nsteps = 11\n')
    config = load_config(cfg)
    assert (config.steps, config.batch_size) == (11, 2)
    assert config.style_image == str((tmp_path / "styles" / "wave.jpg").resolve())
    assert config.data_dir == str((tmp_path / "photos").resolve())


def test_an_inherit_loop_is_refused_on_load(tmp_path: Path) -> None:
    write(tmp_path / "a.toml", 'inherit = "b.toml"\ndata_dir = "d"\n')
    write(tmp_path / "b.toml", 'inherit = "a.toml"\nstyle_image = "s.jpg"\n')
    with pytest.raises(ConfigError, match="loops back"):
        load_config(tmp_path / "a.toml")
    write(tmp_path / "self.toml", 'inherit = "self.toml"\n')
    with pytest.raises(ConfigError, match="loops back"):
        load_config(tmp_path / "self.toml")


def test_overrides_win_and_are_type_checked(tmp_path: Path) -> None:
    cfg = write(tmp_path / "a.toml", 'data_dir = "d"\nstyle_image = "s.jpg"\nsteps = 7\n')
    assert load_config(cfg, {"steps": 3}).steps == 3
    with pytest.raises(ConfigError, match="'steps' must be int"):
        load_config(cfg, {"steps": 2.5})


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "bad.toml", 'data_dir = "d"\nstyle_image = "s.jpg"\nlearning_rat = 0.1\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: unknown key 'learning_rat'"):
        load_config(cfg)


@pytest.mark.parametrize("line, message", [
    ('steps = "many"', "'steps' must be int"),
    ("learning_rate = true", "'learning_rate' must be float"),
    ('amp = "fp8"', "'amp' must be one of"),
    ('style_layers = "relu1_1"', "'style_layers' must be list of str"),
    ("channels_last = 1", "'channels_last' must be bool"),
    ("steps = 0", "steps must be positive"),
    ("style_layer_weights = [1.0]", "style_layer_weights has 1 entries"),
    ("[section]\nx = 1", "tables are not supported"),
])
def test_wrong_types_and_values(tmp_path: Path, line: str, message: str) -> None:
    cfg = write(tmp_path / "c.toml", f'data_dir = "d"\nstyle_image = "s.jpg"\n{line}\n')
    with pytest.raises(ConfigError, match=message):
        load_config(cfg)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path / "x.toml", "steps = = 3"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_effective_config_round_trips() -> None:
    config = load_config(None, {"style_image": "/s.jpg", "data_dir": "/d", "style_layers": ["relu1_2"],
                                "style_layer_weights": [2.0]})
    assert config_from_dict(tomllib.loads(config_to_toml(config)), "saved") == config


def test_a_run_continues_from_its_saved_config(tmp_path: Path) -> None:
    """What the trainer saved is the config again: relative paths as the run used them, flags override."""
    config = load_config(None, {"style_image": "styles/s.jpg", "data_dir": "photos", "steps": 10, "seed": 3,
                                "output_dir": "runs/{style_name}"})
    saved = tmp_path / "moved_run" / RUN_CONFIG
    saved.parent.mkdir(parents=True)
    saved.write_text(config_to_toml(config))
    resumed = load_run_config(tmp_path / "moved_run")
    assert resumed == config.replace(output_dir=str(tmp_path / "moved_run"))
    assert resumed.style_image == "styles/s.jpg" and resumed.data_dir == "photos"  # not re-rooted at the file
    assert load_run_config(tmp_path / "moved_run", {"steps": 20}).steps == 20
    with pytest.raises(ConfigError, match="'steps' must be int"):
        load_run_config(tmp_path / "moved_run", {"steps": "x"})


def test_resuming_something_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot resume: the run folder .*nowhere does not exist") as missing:
        load_run_config(tmp_path / "nowhere")
    assert missing.value.setting == "output_dir"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no saved config"):
        load_run_config(tmp_path / "empty")
    (tmp_path / "bad" / "checkpoints").mkdir(parents=True)
    write(tmp_path / "bad" / RUN_CONFIG, "steps = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_run_config(tmp_path / "bad")


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "styles").glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_style_configs_load(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, TrainConfig) and config.style_name == path.stem
    assert Path(config.style_image).name.endswith(".jpg")


def test_flags_take_lists_space_or_comma_separated_and_keep_paths_whole() -> None:
    import argparse

    from fastnst.training.config import SCHEMA

    parser = argparse.ArgumentParser()
    SCHEMA.add_flags(parser, "overrides")
    given = SCHEMA.overrides_from(parser.parse_args([
        "--style-layers", "relu1_2,relu2_2", "relu3_3", "--style-layer-weights", "1,0.5", "2",
        "--preview-images", "a,b.jpg", "c.jpg", "--steps", "7"]))
    assert given == {"style_layers": ("relu1_2", "relu2_2", "relu3_3"), "style_layer_weights": (1.0, 0.5, 2.0),
                     "preview_images": ("a,b.jpg", "c.jpg"), "steps": 7}
    with pytest.raises(SystemExit):  # argparse names the flag and exits 2
        parser.parse_args(["--style-layer-weights", "1,x"])


def test_command_line_overrides_are_toml_values_checked_against_the_config() -> None:
    assert parse_overrides(['ema_width=0.05', 'schedule="constant"', "style_layer_weights=[1, 2]", "hflip=false"],
                           "--set") == {"ema_width": 0.05, "schedule": "constant",
                                        "style_layer_weights": (1.0, 2.0), "hflip": False}
    for item, message in (("ema_width", "expected KEY=VALUE"), ("schedule=constant", "strings need quotes"),
                          ("no_such_key=1", "unknown"), ("steps=\"ten\"", "'steps' must be")):
        with pytest.raises(ConfigError, match=message):
            parse_overrides([item], "--set")
