"""run_in_transaction is outermost by construction: Django refuses it inside another atomic.
(Its 40001 retries are tested in tests/calls/persistence/test_transactions.py.)"""

import pytest
from django.db import transaction

from core.transactions import run_in_transaction

pytestmark = pytest.mark.portable


@pytest.mark.django_db(transaction=True)
def test_a_write_inside_another_transaction_is_refused():
    with transaction.atomic(), pytest.raises(RuntimeError, match="durable"):
        run_in_transaction(lambda: None)


@pytest.mark.django_db(transaction=True)
def test_outermost_it_runs_and_returns_what_the_function_returns():
    assert run_in_transaction(lambda: transaction.get_connection().in_atomic_block) is True
