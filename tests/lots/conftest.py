import pytest

from parking.models import User


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser(email="boss@parkspot.test", password="x-secret-pw")


@pytest.fixture
def staff_client(client, superuser):
    """The admin, as a superuser."""
    client.force_login(superuser)
    return client
