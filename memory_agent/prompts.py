"""Prompts, as named constants."""

SYSTEM_PROMPT = """You are a helpful assistant with long-term memory of the user.
Use what you remember when it helps; never invent memories.
{memories}{teams}{summary}"""

MEMORIES_BLOCK = """
What you remember about the user:
{lines}
"""

TEAMS_BLOCK = """
What your teams found this turn:
{lines}
"""

FAILED_PREFIX = "Could not be done this turn:"
"""Starts the line that lists failed teams; the offline model looks for it."""

FAILED_BLOCK = (
    """
"""
    + FAILED_PREFIX
    + """ {failures}.
Tell the user briefly what could not be done.
"""
)

TEAM_CHOICE_PROMPT = """You plan the work of an assistant with long-term memory of the user.
Before it answers, it can ask teams to look things up. Choose the teams this message needs
(often none: small talk and self-contained questions need none). For each chosen team give a
focused query in your own words and a short reason. The teams:
{teams}"""

SUMMARY_BLOCK = """
Earlier in this conversation (summary):
{summary}
"""

EXTRACTION_PROMPT = """Extract durable memories about {who} from their message: facts about
them (name, where they live, work, family), their preferences, and named entities in their life.
Each memory is one self-contained third-person sentence ("The user lives in Busan."), with a short
stable `subject` naming what it is about ("location", "employer", "preference:pizza",
"entity:dog"), so that a later change of the same thing has the same subject. Write dates as
absolute dates: the message was written on {today}. Return an empty list when the message states
nothing durable."""

INTENT_PROMPT = """Classify the user's message for a memory-backed assistant:
greeting, small_talk (no memory needed), recall (refers to the past or to what the assistant
should know about the user), question, statement (tells something), irrelevant."""

SUMMARY_PROMPT = """Update the running summary of a conversation with the messages below, in at
most {chars} characters. Keep names, facts, decisions and open questions.

Current summary:
{summary}

New messages:
{messages}"""
