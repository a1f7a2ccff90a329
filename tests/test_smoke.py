def test_home_page_lists_lots(client, lot):
    response = client.get("/")
    assert response.status_code == 200
    assert "paris" in response.content.decode().lower() or lot.name in response.content.decode()
