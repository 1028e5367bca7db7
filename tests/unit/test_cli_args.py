"""The command's options are checked before anything runs: a bad one is a clear usage error."""

from __future__ import annotations

import pytest

from memory_agent.cli import main, parser


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["threads", "--user", "u", "--limit", "-1"], "out of range (1 to 10000)"),
        (["threads", "--user", "u", "--limit", "99999999999999999999"], "out of range"),
        (["threads", "--user", "u", "--limit", "ten"], "not a whole number"),
        (["memories", "search", "--user", "u", "q", "--limit", "0"], "out of range"),
        (["db", "index", "--min-memories", "-5"], "out of range"),
        (["prune", "--older-than", "9999999999d"], "too long a duration: at most 36500d"),
        (["prune", "--older-than", "0d"], "not a positive duration"),
        (["prune", "--older-than", "soon"], "not a duration"),
        (["chat", "--user", ""], "user_id must not be empty"),
        (["ask", "--user", " ", "--thread", "t", "hi"], "user_id must not be empty"),
        (["memories", "--user", ""], "user_id must not be empty"),
        (["memories", "list", "--user", "a\x01b"], "must not contain control"),
        (["forget", "--user", "", "--yes"], "user_id must not be empty"),
    ],
)
def test_bad_options_are_usage_errors(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(argv)
    assert exit_.value.code == 2
    assert said in capsys.readouterr().err


def test_a_bad_memory_ttl_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEMORY_AGENT_MEMORY_TTL", "99999999999d")
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/never-reached")
    assert main(["threads", "--user", "u"]) == 2
    err = capsys.readouterr().err
    assert "MEMORY_AGENT_MEMORY_TTL: '99999999999d' is too long a duration" in err
    assert "Traceback" not in err


def test_good_options_pass() -> None:
    args = parser().parse_args(["threads", "--user", "ana@example.com", "--limit", "10000"])
    assert (args.user, args.limit) == ("ana@example.com", 10000)
    assert parser().parse_args(["prune", "--older-than", "36500d"]).older_than == "36500d"
