"""The report labeler's vocabulary: what names each finding and device, and the words that modify a mention.

Everything is a regular expression over a lower-cased sentence with single spaces, matched on word boundaries.
Terms name what is reported (a cxr_findings label, or a DeviceType); triggers (ConText's modifiers) say whether a
term is negated, hedged, hypothetical or changed since a prior, and over which direction of the sentence.
A term with no codes and no device blocks the shorter terms inside it ("pericardial effusion" is not a pleural
effusion, "subcutaneous emphysema" is not emphysema). Decisions a reader may look for:

- "heart size is normal", "normal cardiomediastinal silhouette", "costophrenic angles are sharp": statements of
  normality are terms whose mention is negated (cardiomegaly / enlarged cardiomediastinum / effusion absent), and
  so is "heart size at the upper limits of normal"; "borderline cardiomegaly", "borderline heart size":
  cardiomegaly present, severity "borderline".
- "no acute cardiopulmonary abnormality", "normal chest": no label follows from them (they do not say which
  finding is absent, and chronic findings may stand beside them); the labeler records that the report says so.
- "feeding tube", "Dobhoff", "orogastric", "enteric tube": ng_tube (one kind for every tube through the oesophagus);
  a gastrostomy tube is none of the six kinds. Ports, dialysis and Swan-Ganz catheters: cvc. Tracheostomy: none.
- "likely", "probable", "most suggestive of": the favoured reading is stated, so present (as the Indiana University
  annotators code it); "possible", "may represent", "cannot be excluded", "atelectasis versus scarring": uncertain.
- "lungs are clear", "opacity, likely atelectasis": only what is named is labelled; no label implies another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from hilum.common.reported_findings import DeviceType

# The cxr_findings codes (model_repository/cxr_findings/labels.json order) and the names torchxrayvision publishes
# for them: the one place a code meets that name.
PUBLISHED_NAMES: dict[str, str] = {
    "atelectasis": "Atelectasis",
    "consolidation": "Consolidation",
    "infiltration": "Infiltration",
    "pneumothorax": "Pneumothorax",
    "edema": "Edema",
    "emphysema": "Emphysema",
    "fibrosis": "Fibrosis",
    "effusion": "Effusion",
    "pneumonia": "Pneumonia",
    "pleural_thickening": "Pleural_Thickening",
    "cardiomegaly": "Cardiomegaly",
    "nodule": "Nodule",
    "mass": "Mass",
    "hernia": "Hernia",
    "lung_lesion": "Lung Lesion",
    "fracture": "Fracture",
    "lung_opacity": "Lung Opacity",
    "enlarged_cardiomediastinum": "Enlarged Cardiomediastinum",
}
FINDING_CODES = tuple(PUBLISHED_NAMES)


class Modifier(StrEnum):
    """What a trigger (or a term by itself) says about the mentions in its scope."""

    NEGATED = "negated"
    UNCERTAIN = "uncertain"
    HYPOTHETICAL = "hypothetical"  # history of, rule out, evaluate for: says nothing about this image
    NEW = "new"
    STABLE = "stable"
    IMPROVED = "improved"
    WORSENED = "worsened"
    RESOLVED = "resolved"  # resolved, no longer seen, removed: absent now, present before
    TERMINATE = "terminate"  # ends every scope it meets: "but", "however", "which"
    PSEUDO = "pseudo"  # looks like a trigger but is none ("no opacity to suggest pneumonia"): neither modifies nor ends


# The modifiers that decide a mention's status; the others (but TERMINATE) describe change since a prior.
STATUS_MODIFIERS = frozenset({Modifier.NEGATED, Modifier.UNCERTAIN, Modifier.HYPOTHETICAL})


class Direction(StrEnum):
    """Which mentions a trigger reaches: those after it, before it, both (before it: the nearest one only, as in
    "opacity, atelectasis versus scarring"), or (EITHER) those after it and, when none follows it, those before it
    ("stable cardiomegaly", "cardiomegaly is stable")."""

    FORWARD = "forward"
    BACKWARD = "backward"
    BOTH = "both"
    EITHER = "either"


@dataclass(frozen=True)
class Term:
    """A phrase that names findings (cxr_findings codes) or a device; `implied` modifies it by itself.

    anchored: the codes are those of the organs the match names (NORMAL_ANCHORS), e.g. "heart size and mediastinal
    contours are normal" names both cardiomegaly and enlarged_cardiomediastinum.
    """

    pattern: str
    codes: tuple[str, ...] = ()
    device: DeviceType | None = None
    implied: Modifier | None = None
    anchored: bool = False


@dataclass(frozen=True)
class Trigger:
    """Phrases that modify the terms in their scope (ConText): the scope runs in `direction` to the sentence's
    end, a TERMINATE trigger, or a trigger that contradicts it. Each phrase is matched on its own, so that the
    longest phrase found at a place wins ("no suggestion of" over "no")."""

    phrases: tuple[str, ...]
    modifier: Modifier
    direction: Direction


def _any(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


# --- statements about the heart and mediastinum --------------------------------------------------------------------

# An organ a normality statement names, and the labels it then says are absent.
NORMAL_ANCHORS: dict[str, tuple[str, ...]] = {
    r"\bcardiomediastin\w*": ("cardiomegaly", "enlarged_cardiomediastinum"),
    r"\b(?:heart|cardiac)\b": ("cardiomegaly",),
    r"\bmediastin\w*": ("enlarged_cardiomediastinum",),
}
_ANCHOR = _any(r"cardiomediastin\w*", "heart", "cardiac", r"mediastin\w*")
_ORGAN = _ANCHOR + r"(?: size| silhouette| contours?| shadow)?"
# "Upper limits of normal" and "top normal" are normal sizes; "borderline" (heart size, enlarged) is an enlargement
# of severity "borderline".
_NORMAL = _any(r"(?:upper|first) limits? (?:of )?normal(?: size| limits)?", "upper range of normal",
               "(?:near )?top(?:-| )(?:of )?normal(?: limits)?", "high[- ]normal", "upper[- ]normal",
               "normal", "within normal limits", "unremarkable", r"not (?:\w+ )?enlarged", "not widened")
_BORDERLINE = _any(r"borderline(?: enlarged| large| in size)?", "normal to mildly enlarged")
# A word between an organ and "normal" that makes the statement about something else or about enlargement.
_BETWEEN = r"(?!(?:enlarg|increas|promin|large|widen|borderline|mild|moderat|marked|sever|there|but" \
           r"|with|however|although|which|lungs?\b|abnormal|not\b)\w*)[\w/,-]+"
_SIZE_WORD = _any("enlarged", "increased", "large", "prominent", "enlargement")

SIZE_TERMS: tuple[Term, ...] = (
    Term(_ANCHOR + r"\w*,?(?: " + _BETWEEN + "){0,7}? " + _BORDERLINE, ("cardiomegaly",)),
    Term(_BORDERLINE + r"(?: [\w-]+){0,2}? (?:heart|cardiac|cardiomegaly)(?: size| silhouette)?", ("cardiomegaly",)),
    Term(_ANCHOR + r"\w*,?(?: " + _BETWEEN + "){0,8}? " + _NORMAL, implied=Modifier.NEGATED, anchored=True),
    Term(r"normal(?: |-)(?:[\w-]+ ){0,2}?" + _ORGAN + r"(?:(?:,| and|, and) (?:the )?(?:[\w-]+ )?" + _ORGAN + ")*",
         implied=Modifier.NEGATED, anchored=True),
    Term(r"cardiomegaly", ("cardiomegaly",)),
    Term(r"cardiac enlargement|enlargement of the (?:heart|cardiac (?:silhouette|shadow))", ("cardiomegaly",)),
    Term(r"enlarged (?:heart|cardiac (?:silhouette|shadow|size))", ("cardiomegaly",)),
    Term(r"(?:heart|cardiac (?:silhouette|shadow|size)|heart size)(?: [\w-]+){0,3}? " + _SIZE_WORD,
         ("cardiomegaly",)),
    Term(r"(?:enlarged|widened|prominent) (?:superior )?(?:cardio)?mediastin\w*(?: silhouette| contours?)?|"
         r"(?:widening|prominence|enlargement) of the (?:superior |upper )?mediastin\w*(?: contours?)?|"
         r"mediastinal (?:widening|enlargement|prominence)",
         ("enlarged_cardiomediastinum",)),
    Term(r"(?:cardio)?mediastin\w*(?: silhouette| contours?)?(?: [\w-]+){0,3}? (?:enlarged|widened)",
         ("enlarged_cardiomediastinum",)),
)

# --- findings --------------------------------------------------------------------------------------------------------

FINDING_TERMS: tuple[Term, ...] = (
    Term(r"atelecta\w*", ("atelectasis",)),
    Term(r"(?:lobar|segmental|lung|lobe) collapse|collapse of the (?:[\w-]+ ){0,3}?(?:lung|lobe)|"
         r"collapsed (?:[\w-]+ ){0,2}?(?:lung|lobe)", ("atelectasis",)),
    Term(r"consolidat\w*", ("consolidation",)),
    Term(r"infiltrat\w*", ("infiltration",)),
    Term(r"hydropneumothora\w*", ("pneumothorax", "effusion")),
    Term(r"pneumothora\w*|ptx", ("pneumothorax",)),
    Term(r"(?:soft tissue|subcutaneous|chest wall|extremity|facial) (?:o)?edema"),
    Term(r"(?:o)?edema(?:tous)?", ("edema",)),
    Term(r"(?:subcutaneous|soft tissue|mediastinal|chest wall) emphysema"),
    Term(r"emphysema\w*", ("emphysema",)),
    Term(r"cystic fibrosis"),
    Term(r"fibros\w*|fibrotic", ("fibrosis",)),
    Term(r"(?:pericardial|joint|subpulmonic pericardial) effusions?"),
    Term(r"effusions?|pleural fluid|hydrothora\w*", ("effusion",)),
    Term(r"(?:blunting|blunted|blunt) (?:of )?(?:the )?(?:[\w-]+ ){0,2}?costophrenic"
         r"(?: angles?| recess(?:es)?| sulc[ui]s?)?|costophrenic (?:angles? |recess(?:es)? |sulc[ui]s? |xxxx )?"
         r"(?:is |are |remains? )?(?:[\w-]+ )?blunt\w*", ("effusion",)),
    Term(r"costophrenic (?:angles?|recess(?:es)?|sulc[ui]s?) (?:is |are |remains? )?(?:sharp|clear|preserved|normal)",
         ("effusion",), implied=Modifier.NEGATED),
    Term(r"(?:broncho)?pneumonia\w*|pneumonitis", ("pneumonia",)),
    Term(r"pleural(?: [\w-]+)?[ /]thickening|thickening of the (?:[\w-]+ ){0,2}?pleura\w*|"
         r"(?:fissural|fissure|interlobar fissural) thickening|thickening (?:of|in|along) the (?:[\w-]+ )?fissures?|"
         r"(?:bi)?apical (?:[\w-]+ )?(?:pleural )?(?:thickening|capping|caps?)", ("pleural_thickening",)),
    # "nodular opacity" is an opacity of nodular shape, not a nodule
    Term(r"(?:reticulo)?nodular (?:opacit\w*|densit(?:y|ies))", ("lung_opacity",)),
    Term(r"nodular infiltrat\w*", ("infiltration",)),
    Term(r"nodul\w*", ("nodule",)),
    Term(r"mass effect|(?:thyroid|breast|neck|abdominal|renal|hepatic|liver|soft tissue|chest wall) mass(?:es)?"),
    Term(r"mass(?:es)?|mass-?like", ("mass",)),
    Term(r"hernia\w*", ("hernia",)),
    Term(r"(?:lytic|sclerotic|blastic|bone|bony|osseous|skin|cutaneous|osteolytic|expansile|vertebral) lesions?"),
    Term(r"lesions?", ("lung_lesion",)),
    Term(r"fractured (?:[\w-]+ ){0,3}?(?:leads?|wires?|screws?|hardware|plates?)|"
         r"fracture of the (?:[\w-]+ ){0,3}?(?:leads?|wires?|screws?|hardware|plates?)"),
    Term(r"fractur\w*|fx", ("fracture",)),
    Term(r"(?:bone|bony|osseous|breast) densit\w*"),
    Term(r"opacit\w*|opacification|densit(?:y|ies)|hazy|haziness|air[- ]?space (?:disease|process)",
         ("lung_opacity",)),
)

# --- devices ---------------------------------------------------------------------------------------------------------

DEVICE_TERMS: tuple[Term, ...] = (
    Term(r"tracheostomy(?: tube)?|trach tube|(?:gastrostomy|jejunostomy|peg|g-|j-) ?tubes?|"
         r"(?:ekg|ecg|electrocardiogram|monitoring|telemetry) (?:leads?|wires?)"),
    Term(r"endotracheal(?: tube)?|e\.?t\.? tube|ett|intubat(?:ed|ion)", device=DeviceType.ETT),
    Term(r"extubat(?:ed|ion)", device=DeviceType.ETT, implied=Modifier.RESOLVED),
    Term(r"(?:naso|oro)gastric(?: tube)?|(?:ng|og) tube|ngt|ogt|enteric (?:feeding )?tube|feeding tube|"
         r"dobb?hoff(?: tube)?|(?:nasoenteric|nasojejunal|nasoduodenal|gastric) tube", device=DeviceType.NG_TUBE),
    Term(r"peripherally inserted central (?:venous )?catheter|picc(?: line)?s?", device=DeviceType.PICC),
    Term(r"central (?:venous )?(?:catheter|line)s?|cvc|cvl|central venous access|"
         r"(?:internal jugular|ij|subclavian|jugular|femoral)(?: [\w-]+){0,3}? (?:catheter|line|cvc|port)s?|"
         r"(?:triple|double|dual|quad)[- ]lumen (?:catheter|line)|swan[- ]ganz(?: catheter)?|"
         r"pulmonary artery catheter|(?:hemo)?dialysis catheter|port-?a-?cath|mediport|"
         r"(?:chest wall|chest|venous|infusion|power) port", device=DeviceType.CVC),
    Term(r"chest tubes?|chest drains?|(?:thoracostomy|pleural|intercostal)(?: drainage)? (?:tubes?|drains?|catheters?)|"
         r"pigtail (?:catheters?|drains?)|pleurx(?: catheter)?", device=DeviceType.CHEST_TUBE),
    Term(r"pacemakers?|pacers?|aicd|icd|(?:implantable )?(?:cardioverter[- ])?defibrillator|"
         r"pacing (?:leads?|wires?|device|generator)|"
         r"(?:atrial|ventricular|transvenous|epicardial|pacing)(?: [\w-]+){0,2}? (?:leads?|wires?)",
         device=DeviceType.PACEMAKER),
)

TERMS: tuple[Term, ...] = SIZE_TERMS + FINDING_TERMS + DEVICE_TERMS

# --- triggers --------------------------------------------------------------------------------------------------------

_SEEN = _any("seen", "identified", "visualized", "demonstrated", "present", "evident", "appreciated", "noted",
             "visible", "apparent", "detected", "shown", "observed")
_N, _U, _H = Modifier.NEGATED, Modifier.UNCERTAIN, Modifier.HYPOTHETICAL
_F, _B, _BOTH, _EITHER = Direction.FORWARD, Direction.BACKWARD, Direction.BOTH, Direction.EITHER

TRIGGERS: tuple[Trigger, ...] = (
    # negation; "lungs are clear airspace disease": the corpus's redaction often drops the "of"
    Trigger((
        "no new", "no", "not", "without", "nor", "neither", "never", "absence of", "negative for", "free of",
        "clear of", "clear(?= (?:focal )?(?:airspace|air space|consolidation|infiltrat|opacit|edema|effusion))",
        "there (?:is|are) no", "(?:without|no) (?:radiographic |convincing |definite |evident )?"
        "(?:evidence|signs?|suggestion) of", "(?:does|do|did) not (?:show|demonstrate|reveal|identify)",
        "fails? to (?:show|demonstrate|reveal)", "rather than"), _N, _F),
    Trigger((
        "(?:(?:is|are|was|were) )?not (?:well[- ]|definitely |clearly |convincingly |well )?" + _SEEN,
        "(?:has|have) not been " + _SEEN, "(?:is|are) absent", "absent", "(?:is|are) negative",
        "(?:is|are|has been|have been) excluded"), _N, _B),
    # uncertainty
    Trigger((
        "possible", "possibly", "unlikely", "less likely", "questionable", "question of", "questioned", "question",
        "there (?:is|are) (?:a )?(?:possible|suspected|questionable)", "suggestion of", "suspicious (?:for|of)",
        "suspected", "suspect", "suspicion (?:for|of)", "concerning for", "concern for", "worrisome for",
        "suggestive of", "suggests?", "suggesting", "may", "might", "could", "maybe", "perhaps",
        "(?:can't|cannot|can not|could not) (?:exclude|rule out)", "equivocal", "indeterminate", "presumed",
        "presumably", "consider(?:ed)?", "considerations? (?:include|includes)",
        "differential(?: diagnosis)?(?: includes?| considerations? includes?)?", "possibility of",
        "raising the possibility of"), _U, _F),
    Trigger((
        "(?:(?:can|could) ?not|can't) be (?:entirely |completely )?(?:excluded|ruled out)",
        "(?:is|are) not (?:excluded|ruled out)", "not (?:entirely |completely )?(?:excluded|ruled out)",
        "(?:is|are) (?:also )?(?:possible|suspected|questioned)", "(?:is|are) (?:a |also a )?possibility",
        "(?:is|are|seems?) (?:less likely|unlikely)",
        r"\?"), _U, _B),
    Trigger((
        "versus", "vs", "and/or", "difficult to (?:entirely |completely )?(?:exclude|rule out)",
        "(?:is|are) in the differential", "would be a consideration"), _U, _BOTH),
    # hypothetical or historical: not a statement about this image
    Trigger(("(?:may|might|would|could) not be " + _SEEN,), _H, _B),
    Trigger((
        "history of", "hx of", "h/o", "rule[- ]out", "r/o", "to exclude", "evaluate for", "evaluation (?:for|of)",
        "assess for", "assessment (?:for|of)", "if", "in case of", "should", "risk of", "screening for",
        r"correlat\w+"), _H, _F),
    # change since a prior
    Trigger((
        "new", "newly", "new(?:ly)? (?:developed|appearing|seen)", "interval (?:development|appearance) of",
        "development of"), Modifier.NEW, _F),
    Trigger((
        "(?:is|are) new", "newly (?:seen|noted|developed)",
        "new (?:since|from|compared (?:with|to)) (?:the )?(?:prior|previous|last|earlier|comparison)"
        "(?: study| exam(?:ination)?| (?:chest )?(?:radiograph|film|x-ray))?"), Modifier.NEW, _B),
    Trigger((
        "stable", "unchanged", "persistent", "persists", "persisting", "persistently",
        "again (?:seen|noted|demonstrated|identified|visualized|present)", r"re-?demonstrat\w*",
        "similar(?: in appearance| appearance)?", "no (?:significant |appreciable |interval |substantial |definite )*"
        "change(?: in| of)?", "without (?:significant |interval )*change", "not (?:significantly )?changed",
        "remains?", "remaining", "continued", "no (?:significant )?(?:increase|decrease)(?: in)?", "grossly stable",
        "essentially unchanged"), Modifier.STABLE, _EITHER),
    Trigger((
        "improved", "improving", "improvement(?: in| of)?", "decreased", "decreasing", "decrease (?:in|of)",
        "interval decrease (?:in|of)", "smaller", "less(?: prominent| conspicuous| pronounced)?", "diminished",
        "diminishing", "resolving", "partially resolved", "partial resolution(?: of)?",
        "near(?:ly)? (?:complete(?:ly)? )?(?:resolved|resolution)", "clearing", r"regress\w*"),
        Modifier.IMPROVED, _EITHER),
    Trigger((
        "worse", "worsened", "worsening", "increased", "increasing", "increase (?:in|of)",
        "interval increase (?:in|of)", "larger", "enlarging", "progressed", "progressing", "progression(?: of)?",
        "more (?:prominent|extensive|pronounced|conspicuous|confluent|dense)"), Modifier.WORSENED, _EITHER),
    Trigger((
        "resolved", "(?:interval )?resolution(?: of)?", "(?:has|have) (?:since )?resolved", "cleared",
        "no longer(?: " + _SEEN + ")?", "(?:interval )?removal(?: of)?", "removed", "(?:has|have) been removed",
        "(?:status post|s/p) removal of"), Modifier.RESOLVED, _EITHER),
    # "no consolidation, suspicious opacity or effusion": an adjective in a negated list, not a hedge
    Trigger(("to (?:suggest|indicate)", "not only", "gram[- ]negative", "not necessarily", "suspicious"),
            Modifier.PSEUDO, _BOTH),
    # a favoured reading ("opacity, likely atelectasis", "probable effusion") is stated as present and starts a new
    # scope, as do the usual terminating words
    Trigger((
        "(?:most )?likely", "probable", "probably", "(?:most|strongly) (?:suggestive|consistent) (?:of|with)",
        "favou?red", "favou?red to represent", "but", "however", "although", "though", "yet", "aside from",
        "apart from", "except(?: for)?", "other than", "which", "whereas", "while", "with the exception of",
        "there (?:is|are)", "otherwise", "cause of", "source of",
        "(?:is|are) (?:seen|noted|present|identified|demonstrated|visualized)"), Modifier.TERMINATE, _BOTH),
)

# --- laterality, severity, tip distance, whole-report statements -----------------------------------------------------

# A side word and the side it names ("bibasilar" is both sides); "lingula" lies in the left lung.
SIDES: dict[str, str] = {
    r"left(?:-sided)?|lingula\w*|lll|lul": "left",
    r"right(?:-sided)?|rll|rml|rul": "right",
    r"bilateral(?:ly)?|both|bibasi\w*|biapical|bibasal": "bilateral",
}
SEVERITIES: dict[str, str] = {
    "trace": "trace", "tiny": "tiny", "minimal": "minimal", "minimally": "minimal", "small": "small",
    "mild": "mild", "mildly": "mild", "moderate": "moderate", "moderately": "moderate", "large": "large",
    "severe": "severe", "severely": "severe", "massive": "massive", "marked": "marked", "markedly": "marked",
    "extensive": "extensive", "borderline": "borderline",
}
_NUMBER = r"\d+(?:\.\d+)?|one|two|three|four|five|six|seven|eight|nine|ten"
NUMBER_WORDS = {word: float(n) for n, word in enumerate(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"))}
# "4 cm above the carina", "3-4 cm from the carina", "20 mm below the carina"; "at the carina" is 0.
CARINA_DISTANCE = re.compile(
    r"\b(?P<low>" + _NUMBER + r")(?:\s*(?:-|to)\s*(?P<high>" + _NUMBER + r"))?\s*(?P<unit>cm|mm|centimeters?|"
    r"millimeters?)\b\.?\s+(?P<relation>above|superior to|proximal to|from|below|beyond|distal to|inferior to)\s+"
    r"(?:the\s+)?(?:level of (?:the\s+)?)?carina\b"
    r"|\b(?P<at>at|to) (?:the )?(?:level of (?:the )?)?carina\b"
)
ABOVE_RELATIONS = frozenset({"above", "superior to", "proximal to", "from"})

_DISEASE = r"(?:abnormalit(?:y|ies)|disease|process|findings?|pathology)"
NO_ACUTE_DISEASE = re.compile(
    r"\bno (?:evidence of )?(?:acute|active) (?:cardiopulmonary |intrathoracic |cardiothoracic |pulmonary |chest |"
    r"radiographic )?" + _DISEASE + r"\b|\bno (?:evidence of )?(?:cardiopulmonary|intrathoracic) " + _DISEASE + r"\b"
    r"|\bnormal (?:chest|study|examination|exam|radiograph|chest radiograph|chest x-?ray)\b"
    r"|\bnegative (?:chest|study|examination|exam)\b"
)
