"""Cutting a report into sections and sentences."""

from __future__ import annotations

from hilum.priors.report_sections import SectionKind, describing_sentences, sentences, split_sections


def test_headings_open_sections_of_their_kind_and_text_before_them_is_the_body() -> None:
    report = ("Chest, two views.\nINDICATION: Cough, rule out pneumonia.\nCOMPARISON: None.\n"
              "FINDINGS: Small left effusion.\nNo pneumothorax.\nIMPRESSION: Left effusion.")
    sections = split_sections(report)
    assert [(s.kind, s.text) for s in sections] == [
        (SectionKind.BODY, "Chest, two views."),
        (SectionKind.HISTORY, "Cough, rule out pneumonia."),
        (SectionKind.COMPARISON, "None."),
        (SectionKind.FINDINGS, "Small left effusion.\nNo pneumothorax."),
        (SectionKind.IMPRESSION, "Left effusion."),
    ]
    assert sections[3].heading == "FINDINGS"


def test_headings_are_read_in_any_case_with_a_colon_a_dash_or_alone_on_their_line() -> None:
    report = "Clinical history: fever\nFindings\nClear lungs.\nimpression - Normal chest."
    assert [(s.kind, s.text) for s in split_sections(report)] == [
        (SectionKind.HISTORY, "fever"), (SectionKind.FINDINGS, "Clear lungs."),
        (SectionKind.IMPRESSION, "Normal chest."),
    ]


def test_a_word_like_a_heading_inside_a_sentence_opens_nothing() -> None:
    report = "FINDINGS: No history of trauma is given. The findings are stable."
    assert [s.kind for s in split_sections(report)] == [SectionKind.FINDINGS]


def test_a_report_without_headings_is_one_body_and_empty_sections_are_left_out() -> None:
    assert [s.kind for s in split_sections("Normal chest.")] == [SectionKind.BODY]
    assert [s.kind for s in split_sections("FINDINGS:\nIMPRESSION: Normal.")] == [SectionKind.IMPRESSION]
    assert split_sections("  ") == ()


def test_sentences_end_at_stops_and_semicolons_but_not_inside_numbers_or_after_vs() -> None:
    text = "ETT tip 4.5 cm above the carina. Atelectasis vs. pneumonia? No effusion; small pneumothorax!"
    assert sentences(text) == ("ETT tip 4.5 cm above the carina.", "Atelectasis vs pneumonia?", "No effusion;",
                               "small pneumothorax!")


def test_list_numbers_and_bullets_are_dropped_and_blank_lines_end_sentences() -> None:
    text = "1. Small left effusion. 2. No pneumothorax.\n\nStable heart\n- Clear lungs"
    assert sentences(text) == ("Small left effusion.", "No pneumothorax.", "Stable heart", "Clear lungs")


def test_only_sections_that_describe_the_images_give_sentences() -> None:
    report = "INDICATION: Pneumonia?\nFINDINGS: Clear lungs.\nIMPRESSION: Normal.\nRECOMMENDATION: Follow up."
    assert describing_sentences(report) == ((SectionKind.FINDINGS, "Clear lungs."),
                                            (SectionKind.IMPRESSION, "Normal."))
