"""Demo data for `make run`: a small bank contact centre, registered on first start."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from .agents import AgentExists, NewAgent
from .api.agents import AGENTS

log = logging.getLogger(__name__)

DEMO_AGENTS: list[dict[str, Any]] = [
    {"id": "a-wang", "name": "Wang Fang", "team": "private banking", "skills": {"vip": 5, "senior": 4, "wealth": 4,
     "general": 4, "credit_card": 3}, "languages": ["zh", "en"], "channels": {"phone": 1, "webchat": 2}},
    {"id": "a-li", "name": "Li Na", "team": "wealth", "skills": {"wealth": 4, "loan": 3, "general": 3},
     "languages": ["zh"], "channels": {"phone": 1, "webchat": 3, "app": 3}},
    {"id": "a-zhao", "name": "Zhao Lei", "team": "fraud desk", "skills": {"fraud": 5, "general": 3, "credit_card": 3},
     "languages": ["zh", "en"], "channels": {"phone": 1, "app": 2}},
    {"id": "a-chen", "name": "Chen Jing", "team": "accessibility", "skills": {"sign_language": 4, "elderly_care": 4,
     "general": 3}, "languages": ["zh"], "channels": {"video": 1, "phone": 1}},
    {"id": "a-sato", "name": "Sato Yuki", "team": "international", "skills": {"general": 3, "credit_card": 3},
     "languages": ["ja", "en", "zh"], "channels": {"phone": 1, "webchat": 3}},
    {"id": "a-kim", "name": "Kim Minji", "team": "international", "skills": {"general": 3, "loan": 3},
     "languages": ["ko", "en"], "channels": {"phone": 1, "webchat": 3}},
    {"id": "a-zhou", "name": "Zhou Min", "team": "complaints", "skills": {"complaints": 4, "senior": 4, "general": 3},
     "languages": ["zh"], "channels": {"phone": 1, "webchat": 2}},
    {"id": "a-sun", "name": "Sun Hao", "team": "general", "skills": {"general": 3, "credit_card": 3, "loan": 2,
     "elderly_care": 3, "corporate": 3}, "languages": ["zh"], "channels": {"phone": 1, "webchat": 3, "app": 3}},
]


def demo_startup(var_dir: Path) -> Any:
    async def load(app: web.Application) -> None:
        directory = app[AGENTS]
        if directory.list():
            return  # not the first start: the log already has agents
        tokens: dict[str, str] = {}
        for spec in DEMO_AGENTS:
            try:
                await directory.register(NewAgent.model_validate_json(json.dumps(spec)), "demo")
            except AgentExists:
                continue
            tokens[spec["id"]] = await directory.issue_token(spec["id"], "demo")
        path = var_dir / "demo-agents.json"
        path.write_text(json.dumps(tokens, indent=2) + "\n")
        path.chmod(0o600)
        log.warning("demo: registered %d agents; their desk tokens are in %s (open /desk)", len(tokens), path)

    return load
