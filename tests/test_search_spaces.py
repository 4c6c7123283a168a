from ray.tune.search.sample import Categorical

from search_spaces import SPACES
from search_spaces.base import SearchSpace, choice, uniform


def test_a_choice_is_ablated_at_each_of_its_choices():
    for space in filter(None, SPACES.values()):
        for key, domain in space.params.items():
            if isinstance(domain, Categorical):
                assert space.levels[key] == list(domain.categories), (space.name, key)
    assert SPACES["model"].levels["model.encoder"][-1] == "tu-mobilenetv4_conv_small_050"
    assert set(SPACES["model"].levels) <= set(SPACES["full"].levels)


def test_levels_a_space_states_are_kept_and_come_first():
    space = SearchSpace(name="s", description="", params={"train.batch_size": choice([4, 8, 16]),
                                                          "aug.rotate_limit": uniform(0.0, 30.0)},
                        levels={"aug.flip_swap": [True, False], "train.batch_size": [8, 16]})
    assert space.levels == {"aug.flip_swap": [True, False], "train.batch_size": [8, 16]}
    space = SearchSpace(name="s", description="", params={"train.batch_size": choice([4, 8])},
                        levels={"aug.rotate_limit": [0.0, 15.0]})
    assert space.levels == {"aug.rotate_limit": [0.0, 15.0], "train.batch_size": [4, 8]}
