"""Migrations make the whole schema, on SQLite and PostgreSQL, with no drift from the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text

from bot.storage.conversations import ConversationRepo, NewMessage
from bot.storage.database import Database, alembic_config
from bot.storage.schema import Base, Message


async def test_upgrade_to_head_creates_every_table(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        async with db.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert set(Base.metadata.tables) <= tables
        assert "alembic_version" in tables
    finally:
        await db.close()


async def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        async with db.engine.connect() as connection:
            diff = await connection.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata)
            )
        assert diff == []
    finally:
        await db.close()


def _schema_and_revision(connection) -> tuple[dict, list]:
    """Each table's columns and indexes, and the alembic revision: all a migration could change."""
    inspector = inspect(connection)
    schema = {
        table: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
        )
        for table in sorted(inspector.get_table_names())
    }
    revision = [row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))]
    return schema, revision


async def test_migrating_twice_is_harmless(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        repo = ConversationRepo(db)
        conversation = await repo.open_conversation(await repo.user_for("web", "ann"), "web")
        await repo.add_user_message(conversation, NewMessage("user", "still here?"))
        async with db.engine.connect() as connection:
            before = await connection.run_sync(_schema_and_revision)
        await db.migrate()
        async with db.engine.connect() as connection:
            after = await connection.run_sync(_schema_and_revision)
        async with db.transaction() as session:
            kept = await session.scalars(select(Message.text).where(Message.conversation_id == conversation))
            assert list(kept) == ["still here?"]
        assert after == before
        head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
        assert before[1] == [head]
    finally:
        await db.close()


async def test_downgrade_to_base_and_up_again(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        from alembic import command

        from bot.storage.database import alembic_config
        import asyncio

        await asyncio.to_thread(command.downgrade, alembic_config(database_url), "base")
        async with db.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert not (set(Base.metadata.tables) & tables)
        await db.migrate()
    finally:
        await db.close()


async def test_the_studio_migration_keeps_existing_passages_and_lore(database_url: str) -> None:
    """0005 on a database with stories: lore written before it stays switched on, passages have
    no rating, and going back to 0004 keeps the rows."""
    import asyncio

    from alembic import command

    from bot.storage.stories import StoryRepo

    db = Database(database_url)
    try:
        await db.migrate("0004")
        ann = await ConversationRepo(db).user_for("test", "ann")
        story = await StoryRepo(db).create_story(ann, "Before the studio")
        async with db.transaction() as session:
            now = {"story": story.id, "now": story.created_at}
            await session.execute(text("INSERT INTO passages (story_id, author, text, status, created_at) "
                                       "VALUES (:story, 'user', 'One.', 'complete', :now)"), now)
            await session.execute(text("INSERT INTO story_lore (story_id, keys, text, created_at) "
                                       "VALUES (:story, 'fox', 'A fox.', :now)"), now)
        await db.migrate()
        repo = StoryRepo(db)
        (passage,) = (await repo.passages(ann, story.id)).values()
        assert (passage.text, passage.rating) == ("One.", None)
        assert [(e.keys, e.text, e.enabled) for e in await repo.lore(ann, story.id)] == [(("fox",), "A fox.", True)]
        await repo.rate_passage(ann, story.id, passage.id, 1)
        await asyncio.to_thread(command.downgrade, alembic_config(database_url), "0004")
        async with db.engine.connect() as connection:
            columns = await connection.run_sync(
                lambda c: {t: {col["name"] for col in inspect(c).get_columns(t)} for t in ("passages", "story_lore")})
            kept = (await connection.execute(text("SELECT count(*) FROM passages"))).scalar()
        assert "rating" not in columns["passages"] and "enabled" not in columns["story_lore"]
        assert kept == 1
        await db.migrate()
    finally:
        await db.close()


async def test_the_scale_migration_widens_ids_and_keeps_rows(database_url: str) -> None:
    """0006 on a database with messages: the rows stay, ids past 32 bits fit afterwards (PostgreSQL's
    columns and identity sequences are BIGINT), the new indexes exist, and going back to 0005 keeps the rows."""
    import asyncio

    from alembic import command

    db = Database(database_url)
    try:
        await db.migrate("0005")
        repo = ConversationRepo(db)
        conversation = await repo.open_conversation(await repo.user_for("web", "ann"), "web")
        await repo.add_user_message(conversation, NewMessage("user", "before 0006"))
        await db.migrate()
        big = 2**40
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO messages (id, conversation_id, parent_id, author, text, status, "
                                       "created_at) VALUES (:id, :c, :id, 'user', 'far', 'complete', "
                                       "CURRENT_TIMESTAMP)"), {"id": big, "c": conversation})
        async with db.engine.connect() as connection:
            indexes = await connection.run_sync(
                lambda c: {i["name"] for t in ("messages", "feedback", "passages") for i in inspect(c).get_indexes(t)})
            if connection.dialect.name == "postgresql":
                sequence = (await connection.execute(text(
                    "SELECT data_type FROM information_schema.sequences WHERE sequence_name = 'messages_id_seq'"
                ))).scalar()
                assert sequence == "bigint"
        assert {"ix_messages_created_at", "ix_messages_parent_id", "ix_feedback_message_id", "ix_feedback_user_id",
                "ix_passages_parent_id"} <= indexes
        async with db.transaction() as session:
            kept = list(await session.scalars(select(Message.text).order_by(Message.id)))
            await session.execute(text("DELETE FROM messages WHERE id = :id"), {"id": big})
        assert kept == ["before 0006", "far"]
        await asyncio.to_thread(command.downgrade, alembic_config(database_url), "0005")
        async with db.engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM messages"))).scalar() == 1
        await db.migrate()
    finally:
        await db.close()
