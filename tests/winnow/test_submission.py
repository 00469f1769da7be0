"""Where `winnow submit` finds the Ray token, and the auth mode Winnow's processes default to."""
import pytest

from winnow.env import apply_defaults
from winnow.submission import job_runtime_env, ray_token


def test_the_token_comes_from_the_option_then_the_variable_then_the_file_it_names(tmp_path, monkeypatch):
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    assert ray_token(None) is None
    (tmp_path / "named").write_text("from-path\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "named"))
    assert ray_token(None) == "from-path"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert ray_token(None) == "from-env"  # Ray's own order: the variable before the file
    (tmp_path / "option").write_text("  from-option \n")
    assert ray_token(str(tmp_path / "option")) == "from-option"
    with pytest.raises(FileNotFoundError, match="missing"):
        ray_token(str(tmp_path / "missing"))


@pytest.mark.parametrize("given, mode", [({}, "disabled"), ({"RAY_AUTH_TOKEN": "t"}, "token"),
                                         ({"RAY_AUTH_TOKEN_PATH": "/x"}, "token")])
def test_the_auth_mode_follows_whether_a_token_is_given(monkeypatch, given, mode):
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    apply_defaults()
    import os

    assert os.environ["RAY_AUTH_MODE"] == mode


def test_the_job_inherits_the_clusters_auth_mode_and_gets_the_prefect_auth_string(monkeypatch):
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "u:p")
    env = job_runtime_env()["env_vars"]
    assert "RAY_AUTH_MODE" not in env and env["PREFECT_API_AUTH_STRING"] == "u:p"
