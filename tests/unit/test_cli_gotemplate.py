"""The Go template subset behind ``--format``: output as Go's text/template prints it."""

from __future__ import annotations

import pytest

from sampan.cli.gotemplate import TemplateError, go_float, render

DATA = {"Name": "/web", "State": {"Status": "running", "Running": True, "Pid": 42},
        "Config": {"Cmd": ["sh", "-c", "x"], "Labels": {"b": "2", "a": "1"}, "Env": None},
        "Count": 0}


@pytest.mark.parametrize(("template", "expected"), [
    ("{{.State.Status}} {{.State.Running}}", "running true"),
    ("{{.Config.Cmd}}", "[sh -c x]"),
    ("{{.Config.Labels}}", "map[a:1 b:2]"),
    ("{{.Missing}}", "<no value>"),
    ("{{.Config.Env}}", "<nil>"),
    ("{{json .Config.Labels}}", '{"b":"2","a":"1"}'),
    ("{{json .Name}}", '"/web"'),
    ("{{index .Config.Labels \"a\"}}", "1"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}", "a=1,b=2,"),
    ("{{range .Config.Cmd}}<{{.}}>{{end}}", "<sh><-c><x>"),
    ("{{range .Config.Env}}x{{else}}empty{{end}}", "empty"),
    ("{{if .Count}}yes{{else if .State.Running}}up{{else}}no{{end}}", "up"),
    ("{{with .State}}{{.Pid}}{{end}}", "42"),
    ("{{join .Config.Cmd \" \"}}", "sh -c x"),
    ("{{.Name | upper}}", "/WEB"),
    ("{{lower (upper .Name)}}", "/web"),
    ("{{printf \"%s:%d\" .Name .State.Pid}}", "/web:42"),
    ("{{len .Config.Cmd}}", "3"),
    ("{{eq .State.Status \"running\" \"paused\"}}", "true"),
    ("a {{- .Name -}} b", "a/webb"),
    ("{{$n := .Name}}{{$n}}{{$.Count}}", "/web0"),
])
def test_renders_like_go(template: str, expected: str) -> None:
    assert render(template, DATA) == expected


def test_methods_take_arguments() -> None:
    class Row:
        def Label(self, name: str) -> str:
            return {"x": "1"}.get(name, "")

    assert render('{{.Label "x"}}', Row()) == "1"


@pytest.mark.parametrize("template", ["{{.Name", "{{end}}", "{{if .X}}", "{{nosuchfunc .}}"])
def test_bad_templates_raise(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, DATA)


def test_unknown_attribute_of_an_object_is_an_error() -> None:
    with pytest.raises(TemplateError, match="can't evaluate field Nope"):
        render("{{.Nope}}", object())


@pytest.mark.parametrize(("value", "text"), [(1e6, "1e+06"), (123456.0, "123456"),
                                             (1.5, "1.5"), (2.0, "2"), (1e-05, "1e-05")])
def test_floats_print_as_go_percent_v(value: float, text: str) -> None:
    assert go_float(value) == text
