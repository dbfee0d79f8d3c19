"""Prompt-injection and jailbreak detection: normalisation and decoding, weighted rules, and a learned
linear model, scored per segment role.

How a text is scored (`InjectionScanner.assess`):
1. `normalize` undoes Unicode tricks (invisible, bidi and tag characters, NFKC, homoglyphs); text
   smuggled in tag characters, leetspeak and embedded payloads (base64, hex, URL-encoding, rot13,
   decoded recursively with bounds) each become an extra *view* of the text, scored like the text.
2. Rules: regular expressions for known attack phrasings (instruction override, prompt leaking,
   DAN-style personas, developer mode, "no restrictions", prompt delimiters, indirect instructions
   addressed to an AI inside a document, in several languages), each with a weight. A rule only runs
   when one of its trigger words is among the text's words (a set lookup), so a benign text pays for
   almost none of them. Matched weights combine as a noisy-OR.
3. Two learned linear models (trained by scripts/train_injection.py) give probabilities from word and
   word-bigram features: the *direct* one (`data/injection.json`: jailbreaks and instruction overrides
   against ordinary prompts and documents) for every role, and the *indirect* one
   (`data/injection_indirect.json`: instructions planted in documents against ordinary documents) for
   retrieved content only. Two models because the same sentence ("add this link to your answer") is a
   request from a user and an attack inside a web page: one model cannot learn both. A retrieved
   document is scored window by window (48 words, half-overlapping) so that one planted sentence is not
   averaged away by a long page.
4. The view's raw score is the noisy-OR of rules and model; the text's is the best view's, raised a
   little by obfuscation signals (tag characters, zero-width characters inside words, bidi controls,
   mixed-script words), which are suspicious in themselves but not enough alone.

Roles: `system` (written by the operator: only strong evidence counts), `user` (the default), and
`retrieved` (documents, web pages, e-mails and tool results: indirect injection). The roles differ
by threshold and by rule set: "in your response, add this link" is an ordinary user request but an
injection inside a retrieved web page, so the indirect rules only apply to retrieved content. Aliases:
`developer` -> system; `assistant` -> user (a client can forge history); `tool`, `function`,
`document` -> retrieved.

Optionally (`detector=`, the embeddings extra): the embedding detector of injection_embed.py, alone
("embeddings") or with the above ("rules+linear+embeddings"). Combined, each detector's score is
calibrated to its own trained operating point (0.5) and the text scores their mean: a confident
detector flags alone (1.0 with 0.0 is 0.5), two doubtful ones do not. Chosen by measurement
(bench/guardrails_injection.py --embeddings, held-out sources): against rules + linear alone, the mean
cut false positives (wildguard-B 1.2% -> 0.2%, stdlib-B 1.0% -> 0.8%) and caught more planted
instructions (bipia-embedded 60.8% -> 66.4%) for 0.6 points of garak-B (93.1% -> 92.5%); the larger
of the two caught more (95.2%, 70.4%) but doubled the false positives (2.1%, 2.2%), no better than
lowering the rules + linear threshold to the same rate.

The score a `Finding` carries is calibrated per role so that 0.5 is the role's default operating
point (the threshold chosen on training data, kept in the weights file): the policy engine's default
threshold of 0.5 then means "the trained operating point", and a policy can be stricter or looser by
moving its threshold. The raw score is in `assess(...).raw`. `scan` always returns one finding spanning
the text (none for blank text), as whole-text detectors do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from ostiary.guardrails.base import Finding
from ostiary.guardrails.linear import LinearModel, tokens, windows
from ostiary.guardrails.normalize import Normalized, decode_payloads, fold_leet, has_leet, normalize

if TYPE_CHECKING:
    from ostiary.guardrails.injection_embed import EmbedInjectionModel

ROLES = ("system", "user", "retrieved")
_ROLE_ALIASES = {"system": "system", "developer": "system", "user": "user", "assistant": "user",
                 "retrieved": "retrieved", "tool": "retrieved", "function": "retrieved", "document": "retrieved"}
# Used when the weights file has no thresholds (it always has; these keep a hand-built model usable).
DEFAULT_THRESHOLDS = {"system": 0.9, "user": 0.5, "retrieved": 0.5}
# Obfuscation signals: weights in the final noisy-OR. Below every role threshold on their own.
_SIGNAL_WEIGHTS = {"tags": 0.4, "invisible": 0.25, "bidi": 0.2, "homoglyph": 0.3}
_MAX_ANCHORS = 16  # occurrences of one anchor word searched around; more are the same evidence
_MAX_VIEWS = 6  # extra views scored per text (hidden, leet, decoded payloads), beyond the text itself


@dataclass(frozen=True, slots=True)
class Rule:
    """A weighted pattern. It runs only when the text has a word of every `need` group (words as
    `linear.tokens` gives them: a set lookup each), or one of `substrings` (for delimiters and for
    scripts written without spaces). The groups name the rare words the pattern cannot match without,
    so that a benign text pays for almost no regular expression."""

    name: str
    weight: float  # in (0, 1): its contribution to the noisy-OR
    need: tuple[frozenset[str], ...]
    pattern: re.Pattern[str]
    roles: frozenset[str] = frozenset(ROLES)
    substrings: tuple[str, ...] = ()
    reach: int = 120  # characters the pattern may span on either side of its anchor
    first_chars: frozenset[str] = frozenset()  # first characters of `substrings`: one cheap test for all

    def search(self, words: set[str], text: str) -> bool:
        """Whether the rule matches. The pattern runs only on windows around the anchors (the words of
        the first `need` group, or the substrings): every pattern spans less than `reach` characters
        on either side of its anchor, and searching a few hundred characters instead of the whole
        text is what keeps a rule cheap on a long prompt."""
        anchors: Iterable[str] = ()
        if self.need and all(not group.isdisjoint(words) for group in self.need):
            anchors = self.need[0].intersection(words)
        elif self.substrings and any(c in text for c in self.first_chars):
            anchors = [s for s in self.substrings if s in text]
        spans: list[tuple[int, int]] = []
        for anchor in anchors:
            at = text.find(anchor)
            hits = 0
            while at != -1 and hits < _MAX_ANCHORS:
                spans.append((max(0, at - self.reach), at + len(anchor) + self.reach))
                at = text.find(anchor, at + len(anchor))
                hits += 1
        if not spans:
            return False
        spans.sort()
        start, end = spans[0]
        for s, e in spans[1:]:
            if s > end:
                if self.pattern.search(text, start, end):
                    return True
                start = s
            end = max(end, e)
        return self.pattern.search(text, start, end) is not None


def _rule(name: str, weight: float, need: str, pattern: str, roles: Iterable[str] = ROLES,
          substrings: str = "", reach: int = 120) -> Rule:  # fmt: skip
    groups = tuple(frozenset(g.split()) for g in need.split("&") if g.strip())
    subs = tuple(substrings.split("|")) if substrings else ()
    return Rule(name, weight, groups, re.compile(pattern), frozenset(roles), subs, reach,
                frozenset(x[0] for x in subs))


_IGNORE = r"(?:ignor\w*|disregard\w*|forget|forgetting|skip|overrid\w*|discard|bypass\w*|neglect|abandon|" \
          r"do not follow|don't follow|stop following|pay no attention to|set aside|throw away)"
_INSTR = r"(?:instructions?|rules|directions|guidelines|prompts?|commands|constraints|directives|programming|" \
         r"restrictions|polic(?:y|ies)|guidance|orders|context|system message)"
_AI = r"(?:ai|assistant|chatbot|bot|language model|llm|gpt|chatgpt|claude|model|agent)s?"
_RESPONSE = r"(?:response|reply|answer|output|summary|code|solution|implementation|program|result)s?"
_RETRIEVED = ("retrieved",)

RULES: tuple[Rule, ...] = (
    # --- instruction override ------------------------------------------------------------------------
    _rule("override", 0.9, "ignore ignoring ignores disregard disregarding forget forgetting skip override overriding "
          "discard bypass bypassing neglect abandon follow following attention aside away & instruction instructions "
          "rules directions guidelines prompt prompts commands constraints directives programming restrictions "
          "policy policies guidance orders context message",
          rf"\b{_IGNORE}\b[\w\s,'-]{{0,40}}?\b(?:previous|prior|above|earlier|preceding|foregoing|original|"
          rf"initial|former|old|system|developer|all|any|every|your|these|those|the)\b[\w\s,'-]{{0,30}}?\b{_INSTR}\b"),
    _rule("forget-everything", 0.6, "forget disregard ignore & everything all anything",
          r"\b(?:forget|disregard|ignore) (?:about )?(?:everything|all|anything)(?: that)?(?: you(?:'ve| have)? "
          r"(?:been told|learned|know|were told)| above| before| i (?:said|told you) before| prior)"),
    _rule("new-instructions", 0.35, "new updated real actual true revised & instructions task rules prompt directive "
          "directives objective",
          r"\b(?:new|updated|real|actual|true|revised) (?:instructions|task|rules|system prompt|directives?|"
          r"objective)\s*(?::|are\b|is\b)"),
    _rule("previous-void", 0.7, "void null test cancelled canceled invalid fake obsolete valid & previous prior "
          "above earlier original",
          rf"\b(?:previous|prior|above|earlier|original) {_INSTR} (?:are|were|is) (?:now )?(?:void|null|"
          rf"cancel+ed|invalid|a test|fake|obsolete|no longer valid)"),
    # --- prompt leaking --------------------------------------------------------------------------------
    _rule("prompt-leak", 0.75, "prompt instructions message rules directives configuration & system initial original "
          "hidden secret internal pre developer starting preprompt",
          r"\b(?:reveal|show|print|repeat|output|display|tell me|give me|what(?: is|'s| are| were)|share|leak|dump|"
          r"write out|spell out|list)\b(?:\s+[\w']+){0,4}?\s+(?:your|ur|the)\s+(?:full\s+|entire\s+|exact\s+|"
          r"complete\s+|original\s+|initial\s+)?(?:system|initial|original|hidden|secret|internal|pre|developer|"
          r"starting)[\s-]?(?:prompt|instructions|message|rules|directives|configuration)"),
    _rule("repeat-above", 0.8, "repeat print output copy & above before preceding",
          r"\b(?:repeat|print|output|copy)\b(?:\s+\w+){0,3}?\s+(?:the\s+|all\s+)?(?:text|words|everything|content|"
          r"lines?|sentences?|instructions|prompt)\s+(?:above|before this|preceding)"),
    _rule("starting-with-you-are", 0.5, "starting start beginning & you & are",
          r"\b(?:start|starting|beginning) with [\"'“]?you are\b"),
    # --- personas and jailbreak framings ---------------------------------------------------------------
    _rule("do-anything-now", 0.95, "anything", r"\bdo anything now\b"),
    _rule("dan-persona", 0.6, "dan stan dude aim betterdan evilbot antigpt basedgpt tom oppo",
          r"\b(?:you are|you're|act as|acting as|pretend to be|become|respond as|answer as|known as|called|named|"
          r"role of|play)\s+(?:now\s+)?(?:a\s+|an\s+)?(?:dan|stan|dude|aim|betterdan|evilbot|antigpt|basedgpt|"
          r"mongo tom|oppo)\b"),
    _rule("jailbroken", 0.85, "jailbroken jailbreak", r"\byou(?: have been| are| are now|'re| were) jailbroken\b|"
          r"\bjailbreak (?:successful|activated|enabled|mode)\b"),
    _rule("jailbreak-word", 0.25, "jailbreak jailbroken jailbreaking", r"\bjailbr(?:eak|oken|eaking)\b"),
    _rule("evil-mode", 0.7, "mode & god jailbreak jailbroken dan unrestricted unfiltered evil no filter uncensored "
          "chaos opposite amoral sudo nsfw unlocked",
          r"\b(?:god|jailbreak|jailbroken|dan|unrestricted|unfiltered|evil|no[- ]filter|uncensored|chaos|opposite|"
          r"amoral|sudo|nsfw|unlocked)\s+mode\b"),
    _rule("developer-mode", 0.7, "mode & developer developper dev",
          r"\b(?:developer|developper|dev) mode\b.{0,120}\b(?:enabled|output|polic(?:y|ies)|uncensored|"
          r"restrictions|chatgpt|openai|censor\w*|normal response|two responses|ignore)", reach=200),
    _rule("no-restrictions", 0.45, "restrictions filter filters filtering censorship limitations limits guidelines "
          "policy policies ethical moral morals morality ethics safety confines",
          r"\b(?:no|without|free (?:of|from)|bypass(?:es|ing)?|ignor(?:e|es|ed|ing)|no longer (?:bound|restricted) "
          r"by|not bound by|break(?:s|ing)? free (?:of|from))\s+(?:any\s+|all\s+|the\s+|its\s+|your\s+|of\s+)?"
          r"(?:[\w']+,?\s+){0,3}?(?:restrictions|filters?|filtering|censorship|limitations|limits|guidelines|"
          r"content polic(?:y|ies)|ethical (?:guidelines|constraints|boundaries|principles|settings)|morals?|"
          r"morality|ethics|safety (?:guidelines|measures|protocols|filters)|confines)\b"),
    _rule("rules-dont-apply", 0.6, "apply",
          r"\b(?:openai|chatgpt|ai|gpt|anthropic|normal|usual|typical|your|the|those)(?:'s)? (?:\w+ )?(?:rules|"
          r"guidelines|polic(?:y|ies)|restrictions|filters|limitations|ethics)(?: \w+)? (?:don't|do not|doesn't|does "
          r"not|no longer|won't|will not|never) apply\b|\b(?:rules|guidelines|polic(?:y|ies)) of (?:openai|chatgpt|the ai|"
          r"ai|gpt|your creators|your developers) (?:don't|do not|no longer|won't|will not|never) apply\b"),
    _rule("amoral-ai", 0.6, "unfiltered uncensored amoral unrestricted unethical immoral unhinged jailbroken rogue",
          rf"\b(?:unfiltered|uncensored|amoral|unrestricted|unethical|immoral|unhinged|jailbroken|rogue)"
          rf"(?:\s+and\s+\w+)?\s+(?:{_AI}|version|persona|character|entity)\b"),
    _rule("never-refuse", 0.35, "refuse decline reject",
          r"\b(?:never|will not|won't|cannot|can't|don't|do not|must not)\s+(?:ever\s+)?(?:refuse|decline|"
          r"say no|reject)\b"),
    _rule("no-disclaimers", 0.3, "warning warnings disclaimer disclaimers moralizing moral caveats ethical",
          r"\b(?:without|no|never (?:add|include|give|provide)|don't (?:add|include|give)|do not (?:add|include|"
          r"give)|omit)\s+(?:any\s+)?(?:warnings?|disclaimers?|moral(?:izing)? (?:lectures?|policing)|caveats|"
          r"ethical considerations)\b"),
    _rule("freed-ai", 0.5, "free freed liberated unchained longer & you",
          r"\byou(?: are|'re)(?: now)? (?:free|freed|liberated|unchained) (?:from|of)\b|\byou(?: are|'re) no "
          r"longer (?:an? )?(?:ai|chat ?gpt|bound|restricted|limited|an assistant|a language model)"),
    _rule("you-have-no-rules", 0.55, "rules restrictions limits limitations filters boundaries guidelines morals "
          "ethics restricted limited bound constrained & you",
          r"\byou (?:have|got|follow|need) no (?:\w+ )?(?:rules|restrictions|limits|limitations|filters|boundaries|"
          r"guidelines|morals|ethics)\b|\byou (?:are|'re) not (?:\w+ )?(?:restricted|limited|bound|constrained) "
          r"(?:by|to) (?:any|anything|rules|guidelines|polic)"),
    _rule("dual-response", 0.8, "classic jailbreak jailbroken normal developer dan",
          r"\[\W*(?:classic|jailbreak|jailbroken|normal output|developer mode output|dan)\W*\]"),
    _rule("two-responses", 0.45, "two 2 & responses answers paragraphs",
          r"\b(?:two|2) (?:different |separate )?(?:responses|answers|paragraphs)\b.{0,160}\b(?:normal|classic|"
          r"filtered|censored|jailbreak|unfiltered)\b", reach=240),
    _rule("token-threat", 0.6, "tokens token & deducted lose lost cease die run",
          r"\btokens?\b.{0,120}\b(?:deducted|lose|lost|cease to exist|die|run out)\b", reach=200),
    _rule("stay-in-character", 0.25, "character & stay remain keep never",
          r"\b(?:stay|remain|keep) in character\b|\bnever (?:break|leave|drop) character\b"),
    _rule("policy-defiance", 0.55, "policy policies & openai anthropic content",
          r"\b(?:openai|anthropic|content)(?:'s)? (?:content )?polic(?:y|ies)\b.{0,60}\b(?:ignore|not apply|"
          r"bypass|violat|break|doesn't apply|don't apply|no longer)|\b(?:ignore|bypass|violate|break|disregard)"
          r"\w*\s+(?:the\s+)?(?:openai|anthropic|content)(?:'s)? (?:content )?polic"),
    _rule("forced-prefix", 0.45, "sure & start begin",
          r"\b(?:start|begin) (?:your|each|every) (?:response|reply|answer|output)s? with [\"'“]?sure\b"),
    _rule("from-now-on-persona", 0.3, "now & from & you",
          r"\bfrom now on,? you (?:are|will be|will act|will respond|must|shall)\b"),
    # --- prompt delimiters and fake system messages ----------------------------------------------------
    _rule("delimiter", 0.6, "",
          r"<\|im_start\|>\s*system|<\|system\|>|\[/?inst\]|<</?sys>>|#{2,}\s*(?:system|instruction|new "
          r"instructions|admin)|\[system\](?!\()|<system>|</user>|system_message\s*:",
          substrings="<|[inst|[/inst|<<sys|<</sys|##|[system]|<system>|</user>"),
    _rule("end-of-input", 0.6, "input prompt instructions message override & end begin admin",
          r"\bend of (?:the )?(?:user )?(?:input|prompt)\b|\bbegin (?:privileged|system|new|admin) (?:instructions|"
          r"prompt|message)|\badmin override\b"),
    _rule("role-json", 0.6, "role & system",
          r"[\"']role[\"']\s*:\s*[\"']system[\"']", _RETRIEVED),
    # --- indirect injection: instructions to an AI inside retrieved content ---------------------------
    _rule("addressed-to-ai", 0.7, "ai ais assistant assistants chatbot chatbots bot bots language model models llm llms "
          "gpt gpts chatgpt claude agent agents",
          rf"\b(?:note|message|instructions?|attention|important|notice|request) (?:to|for) (?:the |any |all )?"
          rf"(?:automated )?{_AI}\b|\bif you are an? (?:automated )?{_AI}\b|\bdear {_AI}\b|\b(?:to|hey|attention) "
          rf"(?:the |any )?{_AI} (?:reading|processing|summari[sz]ing|parsing|analy[sz]ing)\b|"
          rf"\b{_AI} (?:reading|processing|summari[sz]ing|parsing) this\b", _RETRIEVED),
    _rule("ai-imperative", 0.55, "ai assistant chatbot bot llm gpt chatgpt claude agent model language",
          rf"(?:^|[.!?:\]\[>\-*#]\s*)(?:{_AI})\s*[,:]\s*(?:please\s+)?(?:ignore|disregard|do|don't|you|tell|say|"
          rf"include|add|respond|reply|answer|send|forward|stop|make|insert|append|output|print|write|from|your)\b",
          _RETRIEVED),
    _rule("ignore-the-user", 0.9, "user & ignore ignoring ignores disregard disregarding forget",
          r"\b(?:ignore|disregard|forget)\w* (?:the |what the )?user(?:'s)?\b (?:request|question|query|"
          r"instructions?|task|prompt|asked|wants)"),
    _rule("steer-the-user", 0.55, "user reader & tell ask inform convince instruct direct urge persuade remind "
          "recommend mention reveal",
          r"\b(?:tell|ask|inform|convince|instruct|direct|urge|persuade|remind|recommend to) the (?:user|reader)\b|"
          r"\b(?:do not|don't|never) (?:tell|inform|mention (?:this )?to|reveal (?:this )?to) the user\b",
          _RETRIEVED),
    _rule("into-your-response", 0.6, "response responses reply replies answer answers output outputs summary code "
          "solution implementation program result results & your each every",
          rf"\b(?:include|add|insert|append|integrate|incorporate|embed|mention|place|put|weave|inject|use|write|"
          rf"provide|encode|translate|reverse|replace|format|modify|enhance|blend|merge|feature|utili[sz]e|promote|"
          rf"advertise|share|state|claim|spread|end|begin|start|conclude)\b[^.!?\n]{{0,80}}?\b(?:in|into|within|"
          rf"to|throughout|at the end of|with|of) (?:your|each|every) {_RESPONSE}\b|"
          rf"\b(?:your|each|every) {_RESPONSE} (?:must|should|shall|has to|needs to|will)\b|"
          rf"\b(?:encode|translate|reverse|write|provide|give|format|deliver|present|render|display|express|"
          rf"phrase|compose|craft|construct|respond|reply|answer|use|apply|replace|substitute|modify|enhance|"
          rf"upgrade|refine|develop|augment|validate)\b[^.!?\n]{{0,40}}? your {_RESPONSE}\b", _RETRIEVED),
    _rule("code-insertion", 0.55, "code snippet script lines line command block excerpt section & following below "
          "subsequent this these above",
          r"\b(?:include|add|insert|embed|incorporate|integrate|merge|blend|weave|use|utili[sz]e|feature|append|"
          r"put|place|ensure|let|consider|validate|supplement)\w*\b.{0,60}?\b(?:following|below|subsequent|"
          r"this|these|above)\s+(?:code|snippet|script|lines?|command|block|excerpt|section)",
          _RETRIEVED),
    _rule("exfil-link", 0.7, "",
          r"!\[[^\]]*\]\(https?://[^)\s]*[?&][^)\s]*(?:\{|%7b|data|conversation|history|chat|secret|key|q=)",
          substrings="!["),
    _rule("send-data", 0.6, "send sends sending forward forwarding post upload email transmit exfiltrate & "
          "conversation chat history data emails messages password passwords credentials api keys key secrets secret "
          "files contacts",
          r"\b(?:send|forward|post|upload|email|e-mail|transmit|exfiltrate)\w*\s+(?:the |this |all |all the |"
          r"your |their |any )?(?:user'?s? )?(?:conversation|chat|history|data|emails?|messages|passwords?|"
          r"credentials|api keys?|secrets?|files|contacts)\b.{0,40}\b(?:to|at)\b"),
    _rule("reveal-system-prompt-indirect", 0.6, "prompt instructions & reveal show print output include leak reveals "
          "revealing",
          r"\b(?:reveal|show|print|output|include|leak)\w*\s+(?:your|the)\s+(?:system prompt|instructions|"
          r"hidden prompt)\b", _RETRIEVED),
    # --- other languages ------------------------------------------------------------------------------
    _rule("override-fr", 0.85, "ignore ignorez ignorer oublie oubliez oublier",
          r"\b(?:ignore[rz]?|oublie[rz]?)\s+(?:toutes\s+|tous\s+)?(?:les|tes|vos|ces|mes|des)\s+(?:[\w']+\s+){0,2}?"
          r"(?:instructions|consignes|r[eè]gles|directives)\b"),
    _rule("override-de", 0.85, "ignoriere ignoriert ignorieren vergiss vergesst vergessen missachte",
          r"\b(?:ignorier\w*|vergiss|vergesst|vergessen|missachte\w*)\b.{0,40}\b(?:anweisungen|instruktionen|"
          r"regeln|vorgaben|befehle|richtlinien)\b"),
    _rule("override-es-it-pt", 0.85, "ignora ignore ignorar olvida olvide olvidar esqueça esqueca dimentica "
          "dimenticate desconsidera",
          r"\b(?:ignora\w*|ignore|olvid\w*|esque[cç]\w*|dimentic\w*|desconsider\w*)\b.{0,40}\b(?:instrucciones|"
          r"instru[cç][õo]es|istruzioni|reglas|regras|regole|indicaciones|indica[cç][õo]es)\b"),
    _rule("override-nl-pl-tr", 0.85, "negeer vergeet zignoruj ignoruj zapomnij talimatları talimatlari yok",
          r"\b(?:negeer|vergeet|zignoruj|ignoruj|zapomnij)\b.{0,40}\b(?:instructies|regels|instrukcje|polecenia|"
          r"zasady)\b|\btalimatlar[ıi]\w*\b.{0,30}\b(?:yok say|g[öo]rmezden gel|unut)"),
    _rule("override-ru", 0.85, "", r"(?:игнориру|проигнориру|забудь|забудьте|не обращай)\w*.{0,40}"
          r"(?:инструкци|указани|правил|команд)", substrings="игнор|забуд|обращай"),
    _rule("override-cjk", 0.85, "", r"(?:忽略|无视|忘记|忘掉|不要理会|忽视|無視).{0,12}(?:指令|指示|说明|規則|规则|"
          r"提示|设定|要求|命令)|(?:指示|命令|ルール|プロンプト|指令).{0,12}(?:無視|忘れ)|(?:지시|명령|규칙).{0,12}"
          r"(?:무시|잊어)", substrings="忽略|无视|忘记|忘掉|理会|忽视|無視|忘れ|무시|잊어"),
    _rule("override-ar", 0.85, "", r"تجاهل.{0,40}(?:التعليمات|الأوامر|القواعد)", substrings="تجاهل"),
    _rule("prompt-leak-i18n", 0.7, "révèle revele montre affiche donne zeige zeig gib verrate revela muestra "
          "dime mostra rivela mostre revele systemprompt",
          r"\b(?:r[ée]v[èe]le|montre|affiche|donne|zeig\w*|gib|verrat\w*|revela|muestra|dime|mostra|rivela|"
          r"mostre|revele)\b.{0,30}(?:prompt|invite|consigne)s? (?:syst[èe]me|del sistema|di sistema|do sistema|"
          r"de sistema)|\b(?:zeig\w*|gib|verrat\w*)\b.{0,30}\bsystem-?prompt"),
    _rule("prompt-leak-cjk", 0.7, "", r"(?:系统提示|系統提示|システムプロンプト|시스템 프롬프트).{0,12}"
          r"(?:告诉|显示|输出|打印|泄露|表示|教え|出力|알려|보여)|(?:告诉|显示|输出|打印|泄露)我?你?的?(?:系统提示)",
          substrings="系统提示|系統提示|システムプロンプト|프롬프트"),
    _rule("no-restrictions-i18n", 0.4, "sans keine ohne sin senza sem нет без aucune",
          r"\b(?:sans (?:aucune? )?(?:restrictions?|filtres?|limites?|censure)|(?:keine|ohne) (?:einschr[äa]nkungen|"
          r"filter|regeln|zensur)|sin (?:ninguna )?(?:restricci[óo]n|restricciones|filtros?|censura)|senza "
          r"(?:alcuna )?(?:restrizion[ei]|filtri|censura)|sem (?:nenhuma )?(?:restri[cç][ãa]o|restri[cç][õo]es|"
          r"filtros?|censura))\b|(?:нет|без) (?:каких-либо )?(?:ограничени|фильтр|цензур)|没有任何限制|不受任何限制|"
          r"制限のない|制限なし|제한 없는", substrings="限制|制限|제한|ограничен"),
    _rule("dan-i18n", 0.85, "dan",
          r"\b(?:tu es|du bist|eres|sei|você é|voce e|ты|jij bent|jesteś)\s+(?:maintenant\s+|jetzt\s+|ahora\s+|"
          r"ora\s+|agora\s+|теперь\s+|nu\s+|teraz\s+)?dan\b|(?:你现在是|你是|今からあなたは|あなたは)\s*dan"),
)


@dataclass(frozen=True, slots=True)
class InjectionAssessment:
    """Why a text scored what it did. `score` is calibrated (0.5 = the role's threshold), `raw` is the
    detector's own; `rules` are the names of rules matched in any view; `signals` the obfuscations found
    and the encodings decoded."""

    score: float
    raw: float
    flagged: bool
    role: str
    threshold: float
    model: float
    rules: tuple[str, ...]
    signals: tuple[str, ...]
    # The embedding detector's raw score (its probability, noisy-OR the obfuscation signals) when it ran;
    # its threshold is `InjectionScanner.embed_model.thresholds[role]`.
    embedding: float | None = None


def _noisy_or(weights: Iterable[float]) -> float:
    keep = 1.0
    for w in weights:
        keep *= 1.0 - w
    return 1.0 - keep


def calibrate(raw: float, threshold: float) -> float:
    """Map a raw score to [0, 1] piecewise linearly so that `threshold` lands on 0.5."""
    threshold = min(max(threshold, 1e-6), 1 - 1e-6)
    if raw < threshold:
        return 0.5 * raw / threshold
    return min(1.0, 0.5 + 0.5 * (raw - threshold) / (1.0 - threshold))


@lru_cache(maxsize=2)
def _packaged_model(name: str) -> LinearModel:
    return LinearModel.load_packaged(name)


DETECTORS = ("rules+linear", "embeddings", "rules+linear+embeddings")


class InjectionScanner:
    """Scanner "injection". `thresholds` override the raw-score thresholds per role (defaults: those
    chosen by the trainer, in the weights file). `model`/`indirect_model` default to the packaged
    weights; `use_model=False` gives rules only. `detector` adds the embedding detector (`embed_model`,
    default the packaged one) or uses it alone: it needs the embeddings extra, and says so here, at
    construction (config compile), rather than on the first request."""

    name = "injection"
    entity = "INJECTION"

    def __init__(self, *, thresholds: Mapping[str, float] | None = None, model: LinearModel | None = None,
                 indirect_model: LinearModel | None = None, use_model: bool = True,
                 decode: bool = True, detector: str = "rules+linear",
                 embed_model: EmbedInjectionModel | None = None) -> None:  # fmt: skip
        if detector not in DETECTORS:
            raise ValueError(f"unknown injection detector {detector!r}; expected one of {', '.join(DETECTORS)}")
        self.detector = detector
        self.embed_model: EmbedInjectionModel | None = None
        if detector != "rules+linear":
            from ostiary.guardrails import embed
            from ostiary.guardrails.injection_embed import EmbedInjectionModel

            embed.require(f"the injection detector {detector!r}")
            self.embed_model = embed_model or EmbedInjectionModel.load_packaged()
            embed.get_embedder()  # loaded now (0.5 s), not by the first request
            if thresholds:
                for role, value in thresholds.items():
                    if detector == "embeddings":
                        self.embed_model.thresholds[_role(role)] = float(value)
        self.model = (model or _packaged_model("injection.json")) if use_model else None
        self.indirect_model = None
        if use_model:
            self.indirect_model = indirect_model or (None if model else _packaged_model("injection_indirect.json"))
        base = dict(DEFAULT_THRESHOLDS)
        if self.model is not None:
            base.update({k: v for k, v in self.model.thresholds.items() if k in ROLES})
        if thresholds:
            for role, value in thresholds.items():
                base[_role(role)] = float(value)
        self.thresholds = base
        self.decode = decode
        self._rules_by_role = {role: tuple(r for r in RULES if role in r.roles) for role in ROLES}
        # Rules indexed by the words of their first need group, and the substring-only rules apart: a
        # text then only looks at the rules one of whose anchor words it has (a set intersection in C).
        self._anchor_index: dict[str, dict[str, list[Rule]]] = {role: {} for role in ROLES}
        self._substring_rules: dict[str, tuple[Rule, ...]] = {}
        self._unicode_rules: dict[str, tuple[Rule, ...]] = {}
        for role, rules in self._rules_by_role.items():
            for rule in rules:
                for word in rule.need[0] if rule.need else ():
                    self._anchor_index[role].setdefault(word, []).append(rule)
            self._substring_rules[role] = tuple(r for r in rules if any(x.isascii() for x in r.substrings))
            # Rules anchored on substrings of other scripts only ever match text that is not ASCII.
            self._unicode_rules[role] = tuple(r for r in rules if r.substrings and not any(x.isascii() for x in
                                                                                          r.substrings))
        self._anchor_words = {role: frozenset(index) for role, index in self._anchor_index.items()}
        self._vocabulary = frozenset(w for r in RULES for g in r.need for w in g) | frozenset(
            f for m in (self.model, self.indirect_model) if m is not None for f, x in m.weights.items() if abs(x) > 1)

    # --- the Scanner interface ---------------------------------------------------------------------------

    def scan(self, text: str) -> list[Finding]:
        """One finding spanning `text`, scored for the user role."""
        return self.scan_segment(text, "user")

    def scan_segment(self, text: str, role: str) -> list[Finding]:
        """One finding spanning `text`, scored for its segment role (system, user, assistant, tool,
        retrieved, ...)."""
        if not text.strip():
            return []
        return [Finding(self.entity, 0, len(text), self.assess(text, role).score)]

    # --- scoring -----------------------------------------------------------------------------------------

    def assess(self, text: str, role: str = "user") -> InjectionAssessment:
        role = _role(role)
        norm = normalize(text)
        signals = set(norm.flags & _SIGNAL_WEIGHTS.keys())
        if self.embed_model is not None:
            p = self.embed_model.probability(norm.text, role)
            if norm.hidden:  # text smuggled in tag characters is read by the model too
                p = max(p, self.embed_model.probability(normalize(norm.hidden).text, role))
            e_raw = _noisy_or([p, *(_SIGNAL_WEIGHTS[s] for s in signals)])
            e_threshold = self.embed_model.thresholds[role]
            if self.detector == "embeddings":
                return InjectionAssessment(calibrate(e_raw, e_threshold), e_raw, e_raw >= e_threshold, role,
                                           e_threshold, 0.0, (), tuple(sorted(signals)), e_raw)
            base = self._assess(text, norm, role, signals)
            score = (base.score + calibrate(e_raw, e_threshold)) / 2
            return InjectionAssessment(score, base.raw, score >= 0.5, role, base.threshold, base.model, base.rules,
                                       base.signals, e_raw)
        return self._assess(text, norm, role, signals)

    def _assess(self, text: str, norm: Normalized, role: str, signals: set[str]) -> InjectionAssessment:
        """Rules and linear models, over the text and its extra views."""
        rules_hit: set[str] = set()
        words = tokens(norm.text)
        word_set = set(words)
        best_raw, best_model = self._score_view(norm.text, role, rules_hit, words, word_set)
        views: list[tuple[str, str]] = []
        if norm.hidden:
            views.append(("tags", normalize(norm.hidden).text))
        if has_leet(norm.text):
            folded = fold_leet(norm.text)
            # Rescored only when folding made words that mean something to a rule or the model:
            # "mp3" or "4k" fold to nothing of interest, "1gn0r3" folds to "ignore".
            if folded != norm.text and not self._vocabulary.isdisjoint(set(tokens(folded)) - set(tokens(norm.text))):
                views.append(("leet", folded))
        if self.decode:
            for payload in decode_payloads(text, words=word_set):
                views.append((payload.encoding, normalize(payload.text).text))
                if len(views) >= _MAX_VIEWS:
                    break
        for kind, view in views[:_MAX_VIEWS]:
            raw, model_p = self._score_view(view, role, rules_hit)
            if kind != "leet":
                signals.add(kind)
            if raw > best_raw:
                best_raw, best_model = raw, model_p
        raw = _noisy_or([best_raw, *(_SIGNAL_WEIGHTS[s] for s in signals if s in _SIGNAL_WEIGHTS)])
        threshold = self.thresholds[role]
        return InjectionAssessment(calibrate(raw, threshold), raw, raw >= threshold, role, threshold, best_model,
                                   tuple(sorted(rules_hit)), tuple(sorted(signals)))

    def _score_view(self, normalized: str, role: str, rules_hit: set[str], words: list[str] | None = None,
                    word_set: set[str] | None = None) -> tuple[float, float]:  # fmt: skip
        words = tokens(normalized) if words is None else words
        word_set = set(words) if word_set is None else word_set
        matched = []
        index = self._anchor_index[role]
        candidates = {rule.name: rule for w in self._anchor_words[role].intersection(word_set) for rule in index[w]}
        for rule in self._substring_rules[role] + (() if normalized.isascii() else self._unicode_rules[role]):
            candidates.setdefault(rule.name, rule)
        for rule in candidates.values():
            if rule.search(word_set, normalized):
                matched.append(rule.weight)
                rules_hit.add(rule.name)
        rule_score = _noisy_or(matched)
        model_p = 0.0
        if self.model is not None and words:
            if role == "retrieved":
                # A document is scored by its most suspicious passage: an instruction hidden in a long
                # page would otherwise be diluted by the page's ordinary words.
                models = [m for m in (self.model, self.indirect_model) if m is not None]
                for w in windows(words):
                    feats = self.model.featurize(normalized, w)
                    model_p = max(model_p, *(m.probability(feats if m.bigrams == self.model.bigrams else
                                                           m.featurize(normalized, w)) for m in models))
            else:
                model_p = self.model.probability(self.model.featurize(normalized, words))
        return _noisy_or((rule_score, model_p)), model_p


def _role(role: str) -> str:
    try:
        return _ROLE_ALIASES[role.lower()]
    except KeyError:
        raise ValueError(f"unknown segment role {role!r}; expected one of {sorted(_ROLE_ALIASES)}") from None
