"""Docker tag templates: fields, functions, pipelines, and the errors and limits that keep them safe."""

from __future__ import annotations

import socket

import pytest

from logship.errors import InvalidParameter
from logship.pipeline.info import ContainerInfo
from logship.pipeline.tagtemplate import DEFAULT_TEMPLATE, MAX_OUTPUT, render_tag, validate_template

FULL_ID = "6a86b5e0874334301901ed80cc5075cc900a43ce8338b8801332b91f2b08a50f"
IMAGE_ID = "sha256:2f340bd0d4a6c8c1e1ea2b0dff1c6c2a0cd8e1fa6e4e8b59d5c3f0a6b3e1e7c9"

INFO = ContainerInfo(
    container_id=FULL_ID,
    container_name="/s_attrs",
    entrypoint="sh",
    args=("-c", "echo hi"),
    image_id=IMAGE_ID,
    image_name="busybox:local",
    env=("FOO=bar", "EMPTY="),
    labels={"com.example.a": "alpha", "com.example.b": "beta"},
    log_path=f"/var/lib/logship/containers/{FULL_ID}/{FULL_ID}-json.log",
    daemon_name="docker",
)


def render(template: str) -> str:
    return render_tag(template, INFO)


def error_of(template: str) -> str:
    with pytest.raises(InvalidParameter) as caught:
        render(template)
    return str(caught.value)


# Fields.


def test_default_template_is_the_short_id() -> None:
    assert DEFAULT_TEMPLATE == "{{.ID}}"
    assert render(DEFAULT_TEMPLATE) == FULL_ID[:12]


def test_the_docker_sample_tag_renders_as_docker_rendered_it() -> None:
    # From docker-samples/attrs-json.log (Docker 20.10 cuts "sha256:..." itself to 12 characters).
    template = "{{.Name}}/{{.ImageName}}/{{.ID}}/{{.FullID}}/{{.ImageID}}/{{.DaemonName}}"
    assert render(template) == f"s_attrs/busybox:local/6a86b5e08743/{FULL_ID}/sha256:2f340/docker"


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("ID", FULL_ID[:12]),
        ("FullID", FULL_ID),
        ("Name", "s_attrs"),
        ("ImageID", "sha256:2f340"),
        ("ImageFullID", IMAGE_ID),
        ("ImageName", "busybox:local"),
        ("Command", "sh -c echo hi"),
        ("DaemonName", "docker"),
        ("ContainerID", FULL_ID),
        ("ContainerName", "/s_attrs"),
        ("ContainerImageID", IMAGE_ID),
        ("ContainerImageName", "busybox:local"),
        ("ContainerEntrypoint", "sh"),
        ("ContainerArgs", "[-c echo hi]"),
        ("ContainerEnv", "[FOO=bar EMPTY=]"),
        ("ContainerLabels", "map[com.example.a:alpha com.example.b:beta]"),
        ("LogPath", INFO.log_path),
    ],
)
def test_each_field_renders_like_go_prints_it(field: str, expected: str) -> None:
    assert render("{{." + field + "}}") == expected


def test_hostname_is_the_daemon_hosts_name() -> None:
    assert render("{{.Hostname}}") == socket.gethostname()


def test_literal_text_around_actions_is_kept() -> None:
    assert render("app-{{.Name}} [{{ .ID }}]") == f"app-s_attrs [{FULL_ID[:12]}]"


def test_a_template_without_actions_is_itself() -> None:
    assert render("mytag") == "mytag"
    assert render("") == ""


def test_map_keys_can_be_reached_as_fields() -> None:
    assert render("{{.ContainerLabels.missing}}") == "<no value>"


# Functions.


def test_index_looks_up_a_label() -> None:
    assert render('{{index .ContainerLabels "com.example.a"}}') == "alpha"


def test_index_of_a_missing_key_is_empty() -> None:
    assert render('[{{index .ContainerLabels "nope"}}]') == "[]"


def test_index_of_a_list_takes_a_position() -> None:
    assert render("{{index .ContainerArgs 1}}") == "echo hi"


def test_index_out_of_range_is_an_error() -> None:
    assert "index out of range: 5" in error_of("{{index .ContainerArgs 5}}")


def test_json_quotes_strings_and_encodes_lists_and_maps() -> None:
    assert render("{{json .Name}}") == '"s_attrs"'
    assert render("{{json .ContainerArgs}}") == '["-c","echo hi"]'
    assert render("{{json .ContainerLabels}}") == '{"com.example.a":"alpha","com.example.b":"beta"}'


def test_json_does_not_escape_html_but_escapes_control_characters() -> None:
    assert render('{{json "<a&b>\\t\\x01"}}') == '"<a&b>\\t\\u0001"'


def test_split_and_join() -> None:
    assert render('{{join (split .ImageName ":") "_"}}') == "busybox_local"
    assert render('{{split "a,b,c" ","}}') == "[a b c]"


def test_split_with_an_empty_separator_splits_into_characters() -> None:
    assert render('{{join (split "abc" "") "."}}') == "a.b.c"


def test_case_functions() -> None:
    assert render("{{upper .Name}}") == "S_ATTRS"
    assert render('{{lower "MiXeD"}}') == "mixed"
    assert render('{{title "hello wide-world of_logs"}}') == "Hello Wide-World Of_logs"


def test_upper_maps_each_character_to_one_character_as_go_does() -> None:
    assert render('{{upper "straße"}}') == "STRAßE"


def test_pad_adds_spaces_only_around_a_non_empty_string() -> None:
    assert render("[{{pad .Name 2 1}}]") == "[  s_attrs ]"
    assert render('[{{pad "" 2 1}}]') == "[]"


def test_truncate_keeps_the_first_bytes() -> None:
    assert render("{{truncate .FullID 5}}") == FULL_ID[:5]
    assert render('{{truncate "ab" 5}}') == "ab"


def test_a_pipeline_passes_its_value_as_the_last_argument() -> None:
    assert render("{{.Name | upper}}") == "S_ATTRS"
    assert render("{{.Name | upper | json}}") == '"S_ATTRS"'


def test_a_piped_value_goes_after_the_written_arguments() -> None:
    # `":" | split "a:b"` is split("a:b", ":"), as in Go.
    assert render('{{":" | split "a:b"}}') == "[a b]"


def test_string_literals_take_go_escapes_and_raw_strings_take_none() -> None:
    assert render('{{"a\\tb\\u00e9"}}') == "a\tbé"
    assert render("{{`a\\tb`}}") == "a\\tb"


def test_comments_render_nothing() -> None:
    assert render("a{{/* a comment */}}b") == "ab"


def test_trim_markers_remove_surrounding_whitespace() -> None:
    assert render("a  {{- .Name -}}  b") == "as_attrsb"
    assert render("{{-3}}") == "-3"


# Errors.


def test_an_unknown_field_is_named_with_the_valid_ones() -> None:
    message = error_of("{{.Foo}}")
    assert '"{{.Foo}}"' in message
    assert "unknown field .Foo" in message
    assert ".ContainerLabels" in message and ".ImageName" in message


def test_an_unknown_function_is_named_with_the_template() -> None:
    message = error_of("{{printf .Name}}")
    assert 'function "printf" not defined' in message
    assert '"{{printf .Name}}"' in message


def test_an_unclosed_action_names_the_template() -> None:
    message = error_of("x-{{.Name")
    assert "unclosed action" in message
    assert '"x-{{.Name"' in message


def test_control_structures_are_refused() -> None:
    assert '"if" is not supported' in error_of("{{if .Name}}x{{end}}")


def test_variables_are_refused() -> None:
    assert "variables" in error_of("{{$x := .Name}}")


def test_wrong_argument_types_are_errors() -> None:
    message = error_of('{{pad .Name "2" 1}}')
    assert "pad" in message and "expected int; got string" in message


def test_wrong_argument_counts_are_errors() -> None:
    assert "wrong number of args for upper: want 1 got 2" in error_of('{{upper "a" "b"}}')


def test_a_value_cannot_take_arguments() -> None:
    assert "not a function" in error_of("{{.Name .ID}}")


def test_an_empty_action_is_an_error() -> None:
    assert "missing value" in error_of("{{ }}")


def test_python_attributes_are_unreachable() -> None:
    assert "unknown field .__class__" in error_of("{{.__class__}}")
    assert "can't evaluate field __class__ in type string" in error_of("{{.Name.__class__}}")


def test_the_whole_info_object_cannot_be_printed() -> None:
    assert "not supported" in error_of("{{.}}")


def test_output_is_capped() -> None:
    message = error_of("{{pad .Name 5000 0}}")
    assert str(MAX_OUTPUT) in message


def test_huge_intermediate_values_are_refused_before_they_are_built() -> None:
    assert "more than" in error_of("{{truncate (pad .Name 1000000000000 0) 3}}")


def test_negative_counts_are_errors_as_in_go() -> None:
    assert "negative Repeat count" in error_of("{{pad .Name -1 0}}")
    assert "out of range" in error_of("{{truncate .Name -1}}")


def test_deep_nesting_is_refused() -> None:
    template = "{{" + "(" * 100 + ".Name" + ")" * 100 + "}}"
    assert "nested" in error_of(template)


def test_a_template_can_be_checked_without_a_container() -> None:
    validate_template('{{.Name}}-{{index .ContainerLabels "k"}}')
    with pytest.raises(InvalidParameter, match="unknown field"):
        validate_template("{{.Nope}}")
