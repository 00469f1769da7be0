"""How a dataset's problems are put to a model (issue 13, item 3): a prompt template (a format string or Jinja)
over the row's fields, optional k-shot examples drawn from the train split with a fixed seed, a system prompt and
whether the model's chat template wraps it. It is rendered once, when the dataset is imported, into the problem
rows (`prompt`, `system`, `chat_template`); sampling, every training method and evaluation read those columns,
so one template serves all three and they cannot drift apart."""
from __future__ import annotations

import random
import string

from pydantic import BaseModel, ConfigDict, Field, field_validator

# the fields of a problem row a template may name besides the dataset's own columns
TEMPLATE_FIELDS = ("question", "instruction", "solution", "final")


class PromptConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template: str | None = Field(default=None, description="the user message: a format string such as "
                                 "'Q: {question}\\nA:' or Jinja ('{{ question }}') over the mapped fields "
                                 "(question, instruction, solution, final) and the dataset's own columns; None: "
                                 "the question, then the instruction on its own line")
    shots: int = Field(default=0, ge=0, description="k-shot: solved train problems put before the question")
    shot_seed: int = Field(default=0, description="which train problems are the shots (fixed per seed)")
    shot_template: str = Field(default="{prompt}\n{solution}", description="one solved example: the example's "
                               "rendered prompt and its written solution")
    shot_separator: str = Field(default="\n\n", description="between examples, and before the question")
    system: str | None = Field(default=None, description="system prompt (a system turn under the chat template, "
                               "else a paragraph before the prompt)")
    chat_template: bool = Field(default=True, description="wrap prompts in the model's chat template, if it has one")

    @field_validator("template", "shot_template")
    @classmethod
    def _parses(cls, template: str | None) -> str | None:
        if template is not None and not is_jinja(template):
            try:
                list(string.Formatter().parse(template))
            except ValueError as exc:
                raise ValueError(f"not a valid format string ({exc}); use {{{{ }}}} for a literal brace") from None
        return template


def is_jinja(template: str) -> bool:
    return "{{" in template and "}}" in template or "{%" in template


class TemplateError(KeyError):
    """A template naming a field the row does not have (the message names it and the row's fields)."""

    def __str__(self) -> str:
        return str(self.args[0])


def render(template: str, fields: dict) -> str:
    """`template` filled from `fields`; a name the row does not have is a TemplateError naming it."""
    if is_jinja(template):
        import jinja2

        env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        try:
            return env.from_string(template).render(**fields)
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template: {exc.message}; the row has {sorted(fields)}") from None
    try:
        return template.format(**fields)
    except KeyError as exc:
        raise TemplateError(f"template names {exc.args[0]!r}, which the row does not have; it has "
                            f"{sorted(fields)}") from None


def user_message(fields: dict, cfg: PromptConfig) -> str:
    """One problem's own prompt (no shots)."""
    if cfg.template is None:
        question, instruction = fields["question"], fields.get("instruction") or ""
        return f"{question}\n{instruction}" if instruction else question
    return render(cfg.template, fields)


def add_shots(train: list[dict], splits: list[list[dict]], cfg: PromptConfig) -> None:
    """Put the same `cfg.shots` solved train problems (a seeded draw) before every prompt of `splits`, in place.
    One fixed set, as GSM8K's k-shot evaluations use, so engines share the prefix; a train problem that is
    itself a shot gets the spare example instead, never its own answer."""
    if not cfg.shots:
        return
    if len(train) <= cfg.shots:
        raise ValueError(f"prompt.shots={cfg.shots} needs more than {cfg.shots} train problems; "
                         f"the train split has {len(train)}")
    drawn = random.Random(cfg.shot_seed).sample(range(len(train)), cfg.shots + 1)
    examples = [(train[i]["id"], train[i]["prompt"], train[i]["completion"]) for i in drawn]
    blocks = {None: shot_block(examples[: cfg.shots], cfg)}
    for skip, (example_id, _, _) in enumerate(examples[: cfg.shots]):
        blocks[example_id] = shot_block(examples[:skip] + examples[skip + 1:], cfg)
    for rows in splits:
        for row in rows:
            row["prompt"] = blocks.get(row["id"], blocks[None]) + row["prompt"]


def shot_block(examples: list[tuple[str, str, str]], cfg: PromptConfig) -> str:
    """The solved examples as one text, ending with the separator that comes before the question."""
    rendered = [render(cfg.shot_template, {"prompt": prompt, "solution": solution}) for _, prompt, solution in examples]
    return cfg.shot_separator.join(rendered) + cfg.shot_separator


def presentation(cfg: PromptConfig) -> dict:
    """The columns every problem row carries about how its prompt is shown to a model (models/sft_data.py)."""
    return {"system": cfg.system, "chat_template": cfg.chat_template}
