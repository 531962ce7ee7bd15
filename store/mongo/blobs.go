package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/gridfs"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/dmp-fhir/dmp-fhir/store"
)

// blobBucket is the GridFS bucket of the blobs: collections blobs.files
// and blobs.chunks.
const blobBucket = "blobs"

// gridBlobs keeps blobs in GridFS. A blob is a GridFS file whose filename
// is the blob id and whose _id is a fresh ObjectID: the files document is
// written last, after every chunk, so a blob is visible only once whole; two
// writers of the same id each write their own file (the same bytes, as ids
// name content), and a write a crash interrupted leaves chunks no files
// document points at. The driver creates the bucket's indexes (filename +
// uploadDate, unique files_id + n) on the first write. FerretDB stores the
// two collections as ordinary collections and serves all of this.
type gridBlobs struct {
	db    *mongo.Database
	files *mongo.Collection
}

var _ store.Blobs = (*gridBlobs)(nil)

// Blobs returns the engine's blob storage: GridFS.
func (s *Store) Blobs() store.Blobs {
	return &gridBlobs{db: s.db, files: s.db.Collection(blobBucket + ".files")}
}

// bucket is a new handle per call: a Bucket's buffers and first-write flag
// are not safe for concurrent use.
func (g *gridBlobs) bucket() (*gridfs.Bucket, error) {
	return gridfs.NewBucket(g.db, options.GridFSBucket().SetName(blobBucket))
}

type blobFile struct {
	ID     primitive.ObjectID `bson:"_id"`
	Length int64              `bson:"length"`
}

func (g *gridBlobs) find(ctx context.Context, id string) (*blobFile, error) {
	var f blobFile
	err := g.files.FindOne(ctx, bson.D{{Key: "filename", Value: id}},
		options.FindOne().SetSort(bson.D{{Key: "filename", Value: 1}, {Key: "uploadDate", Value: -1}})).Decode(&f)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap("blob "+id, err)
	}
	return &f, nil
}

func (g *gridBlobs) Put(ctx context.Context, id string, r io.Reader) error {
	if !store.ValidBlobID(id) {
		return store.ErrBadBlobID
	}
	if f, err := g.find(ctx, id); err != nil || f != nil {
		return err // immutable: the same id holds the same bytes
	}
	b, err := g.bucket()
	if err != nil {
		return wrap("blob "+id, err)
	}
	us, err := b.OpenUploadStreamWithID(primitive.NewObjectID(), id)
	if err != nil {
		return wrap("blob "+id, err)
	}
	if _, err := io.Copy(us, ctxReader{ctx, r}); err != nil {
		us.Abort() // removes the chunks of this upload only (its own _id)
		return fmt.Errorf("mongodb blob %s: %w", id, err)
	}
	if err := us.Close(); err != nil {
		return wrap("blob "+id, err)
	}
	return nil
}

func (g *gridBlobs) Get(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	if !store.ValidBlobID(id) {
		return nil, 0, store.ErrBadBlobID
	}
	f, err := g.find(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	if f == nil {
		return nil, 0, storeErr(store.ErrNotFound, nil, "blob %s", id)
	}
	b, err := g.bucket()
	if err != nil {
		return nil, 0, wrap("blob "+id, err)
	}
	ds, err := b.OpenDownloadStream(f.ID)
	if err != nil {
		return nil, 0, wrap("blob "+id, err)
	}
	return ds, f.Length, nil
}

func (g *gridBlobs) Delete(ctx context.Context, id string) error {
	if !store.ValidBlobID(id) {
		return store.ErrBadBlobID
	}
	cur, err := g.files.Find(ctx, bson.D{{Key: "filename", Value: id}}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return wrap("blob "+id, err)
	}
	var files []blobFile
	if err := cur.All(ctx, &files); err != nil {
		return wrap("blob "+id, err)
	}
	b, err := g.bucket()
	if err != nil {
		return wrap("blob "+id, err)
	}
	for _, f := range files {
		if err := b.DeleteContext(ctx, f.ID); err != nil && !errors.Is(err, gridfs.ErrFileNotFound) {
			return wrap("blob "+id, err)
		}
	}
	return nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
