from edge_core.ae_titles import ae_title_key


def test_case_and_surrounding_spaces_do_not_count():
    assert ae_title_key(" plain-ds  ") == ae_title_key("PLAIN-DS") == ae_title_key("Plain-Ds")


def test_inner_spaces_and_other_characters_do():
    assert ae_title_key("PLAIN DS") != ae_title_key("PLAINDS")
    assert ae_title_key("PLAIN-DS") != ae_title_key("PLAIN_DS")
