import pytest

from sampan import errdefs
from sampan.drivers.graph.images.config_changes import apply_changes


def test_exec_and_shell_forms_of_cmd_and_entrypoint() -> None:
    config = apply_changes({}, ['CMD ["sh", "-c", "echo hi"]', "ENTRYPOINT /bin/run --flag"])
    assert config["Cmd"] == ["sh", "-c", "echo hi"]
    assert config["Entrypoint"] == ["/bin/sh", "-c", "/bin/run --flag"]


def test_env_forms_replace_existing_values_and_expand_variables() -> None:
    config = apply_changes(
        {"Env": ["PATH=/bin", "A=old"]},
        ['ENV A=new B="two words"', "ENV C $A-x", "ENV D=${B}"],
    )
    assert config["Env"] == ["PATH=/bin", "A=new", "B=two words", "C=new-x", "D=two words"]


def test_label_expose_volume_workdir_user_stopsignal() -> None:
    config = apply_changes(
        {"WorkingDir": "/srv"},
        [
            'LABEL a=1 "b c"=2',
            "EXPOSE 80 53/udp 8000-8001",
            'VOLUME ["/data"]',
            "VOLUME /logs /cache",
            "WORKDIR app",
            "USER nobody:nogroup",
            "STOPSIGNAL SIGQUIT",
        ],
    )
    assert config["Labels"] == {"a": "1", "b c": "2"}
    assert config["ExposedPorts"] == {
        "80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}
    }
    assert config["Volumes"] == {"/data": {}, "/logs": {}, "/cache": {}}
    assert config["WorkingDir"] == "/srv/app"
    assert config["User"] == "nobody:nogroup"
    assert config["StopSignal"] == "SIGQUIT"


def test_original_config_is_not_modified() -> None:
    original = {"Env": ["A=1"]}
    apply_changes(original, ["ENV A=2"])
    assert original == {"Env": ["A=1"]}


def test_healthcheck_forms() -> None:
    assert apply_changes({}, ["HEALTHCHECK NONE"])["Healthcheck"] == {"Test": ["NONE"]}
    assert apply_changes({}, ["HEALTHCHECK CMD curl -f x"])["Healthcheck"] == {
        "Test": ["CMD-SHELL", "curl -f x"]
    }


@pytest.mark.parametrize(
    "change", ["RUN echo hi", "FROM busybox", "EXPOSE http", "ENV", "ENV A", "COPY a b"]
)
def test_disallowed_or_malformed_changes_are_rejected(change: str) -> None:
    with pytest.raises(errdefs.InvalidParameter):
        apply_changes({}, [change])
